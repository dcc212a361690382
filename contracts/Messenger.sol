// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// The shape a cross-chain message source must have on FISCO BCOS for its logs to be provable:
/// the sending call returns nothing and emits exactly one event (see docs/evidence-format.md,
/// FISCO log binding).
contract Messenger {
    uint64 public sequence;

    event CrossChainMessage(uint64 indexed sequence, string dstChain, bytes payload);

    function send(string calldata dstChain, bytes calldata payload) external {
        sequence += 1;
        emit CrossChainMessage(sequence, dstChain, payload);
    }
}
