// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ICrossChainReceiver, ICrossChainSender} from "../CrossChainGateway.sol";
import {IGatewaySend} from "./PingPong.sol";

/// @title Notary: attest a document hash on another chain.
/// @notice `requestAttestation` sends the document hash to a Notary on `dstChain`, which records
/// `attested[srcChain][documentHash] = block.timestamp` (that chain's unit: ms on FISCO BCOS)
/// and returns abi.encode(documentHash). The requesting Notary records the acknowledged status
/// per document. Only the gateway may call in, and only allowed (chain, notary) pairs count.
contract Notary is ICrossChainReceiver, ICrossChainSender {
    address public immutable gateway;
    address public owner;
    mapping(bytes32 => bool) private _peers;
    /// attested[srcChain][documentHash]: this chain's block.timestamp of the attestation.
    mapping(string => mapping(bytes32 => uint256)) public attested;
    /// The document each request of this contract was about.
    mapping(bytes32 => bytes32) public requestDocument;
    /// 0 none yet, else the acknowledged DeliveryStatus of each request (by message id).
    mapping(bytes32 => uint8) public requestStatus;
    /// The document's best acknowledged status: SUCCESS (1) once any request succeeded, else
    /// the latest failure. Anyone may request, so a later expired request of someone else's
    /// cannot undo an attestation.
    mapping(bytes32 => uint8) public attestationStatus;

    event PeerAllowed(string chain, address peer);
    event AttestationRequested(bytes32 indexed id, bytes32 indexed documentHash, string dstChain);
    event Attested(string srcChain, address requester, bytes32 indexed documentHash);
    event AttestationAcknowledged(bytes32 indexed documentHash, uint8 status);

    error NotOwner();
    error NotGateway();
    error PeerNotAllowed(string srcChain, address sender);

    constructor(address gateway_) {
        gateway = gateway_;
        owner = msg.sender;
    }

    function allowPeer(string calldata chain, address peer) external {
        if (msg.sender != owner) revert NotOwner();
        _peers[keccak256(abi.encode(chain, peer))] = true;
        emit PeerAllowed(chain, peer);
    }

    function requestAttestation(
        string calldata dstChain,
        address notary,
        bytes32 documentHash,
        uint64 timeout
    ) external returns (bytes32 id) {
        id = IGatewaySend(gateway).sendMessage(dstChain, notary, abi.encode(documentHash), timeout);
        requestDocument[id] = documentHash;
        emit AttestationRequested(id, documentHash, dstChain);
    }

    function onCrossChainMessage(string calldata srcChain, address sender, bytes calldata payload)
        external
        returns (bytes memory)
    {
        if (msg.sender != gateway) revert NotGateway();
        if (!_peers[keccak256(abi.encode(srcChain, sender))]) {
            revert PeerNotAllowed(srcChain, sender);
        }
        bytes32 documentHash = abi.decode(payload, (bytes32));
        attested[srcChain][documentHash] = block.timestamp;
        emit Attested(srcChain, sender, documentHash);
        return abi.encode(documentHash);
    }

    function onCrossChainAck(bytes32 id, uint8 status, bytes calldata) external {
        if (msg.sender != gateway) revert NotGateway();
        bytes32 documentHash = requestDocument[id];
        requestStatus[id] = status;
        if (attestationStatus[documentHash] != 1) attestationStatus[documentHash] = status;
        emit AttestationAcknowledged(documentHash, status);
    }
}
