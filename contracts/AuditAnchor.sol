// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title AuditAnchor
/// @notice Public anchors of a gateway's signed audit checkpoints (docs/audit.md, "Anchored
/// checkpoints"). Anyone may anchor; an auditor reads the Anchored events of the gateway's
/// anchoring account (`by`) and compares them with an export, so that the gateway's operator
/// cannot rewrite history that was anchored without the export failing the check. The
/// contract keeps no state: the events (in the chain's blocks) are the record.
contract AuditAnchor {
    /// @param by the anchoring account (the gateway's relayer account on that chain)
    /// @param seq the checkpoint's record sequence number
    /// @param headHash the hash of the audit record at seq (the checkpoint's head_hash)
    /// @param checkpointDigest sha256 of the checkpoint line's canonical JSON, signature included
    event Anchored(address indexed by, uint64 indexed seq, bytes32 headHash, bytes32 checkpointDigest);

    function anchor(uint64 seq, bytes32 headHash, bytes32 checkpointDigest) external {
        emit Anchored(msg.sender, seq, headHash, checkpointDigest);
    }
}
