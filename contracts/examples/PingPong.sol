// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ICrossChainReceiver, ICrossChainSender} from "../CrossChainGateway.sol";

interface IGatewaySend {
    function sendMessage(string calldata dstChain, address receiver, bytes calldata payload, uint64 timeout)
        external
        returns (bytes32 id);
}

/// @title PingPong: the cross-chain round trip of the examples.
/// @notice `ping` sends ("ping", data, replyTimeout) through the gateway; a PingPong receiving a
/// ping from an allowed (srcChain, sender) pair answers with ("pong", data, 0) to that pair, from
/// inside onCrossChainMessage. Pongs are counted and never answered, so two PingPongs cannot be
/// made to loop (relay-protocol requirement 11).
contract PingPong is ICrossChainReceiver, ICrossChainSender {
    /// Seconds a pong may take beyond the ping's own timeout.
    uint64 public constant PONG_WINDOW = 3600;

    address public immutable gateway;
    address public owner;
    mapping(bytes32 => bool) private _peers;
    uint256 public pingsReceived;
    uint256 public pongsReceived;
    uint256 public acksReceived;
    /// The status the gateway acknowledged for each message this contract sent.
    mapping(bytes32 => uint8) public ackStatus;

    event PeerAllowed(string chain, address peer);
    event Pinged(bytes32 indexed id, string dstChain, address peer);
    event PingReceived(string srcChain, address sender, bytes32 pongId);
    event PongReceived(string srcChain, address sender);

    error NotOwner();
    error NotGateway();
    error PeerNotAllowed(string srcChain, address sender);
    error UnknownKind();

    constructor(address gateway_) {
        gateway = gateway_;
        owner = msg.sender;
    }

    function allowPeer(string calldata chain, address peer) external {
        if (msg.sender != owner) revert NotOwner();
        _peers[_pair(chain, peer)] = true;
        emit PeerAllowed(chain, peer);
    }

    function isPeer(string calldata chain, address peer) external view returns (bool) {
        return _peers[_pair(chain, peer)];
    }

    /// Owner only: every ping costs the relayers two deliveries and two acknowledgements.
    function ping(string calldata dstChain, address peer, bytes calldata data, uint64 timeout)
        external
        returns (bytes32 id)
    {
        if (msg.sender != owner) revert NotOwner();
        bytes memory payload = abi.encode("ping", data, timeout + PONG_WINDOW);
        id = IGatewaySend(gateway).sendMessage(dstChain, peer, payload, timeout);
        emit Pinged(id, dstChain, peer);
    }

    function onCrossChainMessage(string calldata srcChain, address sender, bytes calldata payload)
        external
        returns (bytes memory)
    {
        if (msg.sender != gateway) revert NotGateway();
        if (!_peers[_pair(srcChain, sender)]) revert PeerNotAllowed(srcChain, sender);
        (string memory kind, bytes memory data, uint64 replyTimeout) =
            abi.decode(payload, (string, bytes, uint64));
        bytes32 k = keccak256(bytes(kind));
        if (k == keccak256("pong")) {
            pongsReceived += 1;
            emit PongReceived(srcChain, sender);
            return "";
        }
        if (k != keccak256("ping")) revert UnknownKind();
        pingsReceived += 1;
        bytes32 pongId = IGatewaySend(gateway).sendMessage(
            srcChain, sender, abi.encode("pong", data, uint64(0)), replyTimeout
        );
        emit PingReceived(srcChain, sender, pongId);
        return abi.encode(pongId);
    }

    function onCrossChainAck(bytes32 id, uint8 status, bytes calldata) external {
        if (msg.sender != gateway) revert NotGateway();
        acksReceived += 1;
        ackStatus[id] = status;
    }

    function _pair(string calldata chain, address peer) private pure returns (bytes32) {
        return keccak256(abi.encode(chain, peer));
    }
}
