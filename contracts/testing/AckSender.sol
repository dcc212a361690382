// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

interface IGatewaySendForTests {
    function sendMessage(string calldata dstChain, address receiver, bytes calldata payload, uint64 timeout)
        external
        returns (bytes32 id);
}

/// A sending contract whose acknowledgement callback records (mode 0), reverts (1) or loops
/// until it runs out of gas (2).
contract AckSender {
    address public immutable gateway;
    uint8 public mode;
    uint256 public acks;
    uint256 public spin;
    bytes32 public lastId;
    uint8 public lastStatus;
    bytes public lastResult;

    constructor(address gateway_, uint8 mode_) {
        gateway = gateway_;
        mode = mode_;
    }

    function send(string calldata dstChain, address receiver, bytes calldata payload, uint64 timeout)
        external
        returns (bytes32)
    {
        return IGatewaySendForTests(gateway).sendMessage(dstChain, receiver, payload, timeout);
    }

    function onCrossChainAck(bytes32 id, uint8 status, bytes calldata result) external {
        if (mode == 1) revert("ack refused");
        if (mode == 2) {
            while (true) {
                spin += 1;
            }
        }
        acks += 1;
        lastId = id;
        lastStatus = status;
        lastResult = result;
    }
}
