// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

interface IGatewaySendForBench {
    function sendMessage(string calldata dstChain, address receiver, bytes calldata payload, uint64 timeout)
        external
        returns (bytes32 id);
}

/// Benchmark only (bench/relay.py): sends `count` messages in one transaction, so that one
/// client can load the relay faster than it can sign and submit transactions one by one.
/// Each message gets its own nonce (hence its own id) from the gateway.
contract BatchSender {
    address public immutable gateway;
    uint256 public acks;

    constructor(address gateway_) {
        gateway = gateway_;
    }

    function sendMany(
        string calldata dstChain,
        address receiver,
        bytes calldata payload,
        uint64 timeout,
        uint256 count
    ) external {
        for (uint256 i = 0; i < count; i++) {
            IGatewaySendForBench(gateway).sendMessage(dstChain, receiver, payload, timeout);
        }
    }

    /// The gateway calls this for every acknowledgement (the sender has code); counting them
    /// lets the benchmark check the acknowledgements on chain as well as in the relay's store.
    function onCrossChainAck(bytes32, uint8, bytes calldata) external {
        if (msg.sender == gateway) acks += 1;
    }
}

/// Benchmark only: a receiver that does the least a real one does (one storage write), so
/// that deliveries measure the relay and the gateway, not the application.
contract BenchReceiver {
    uint256 public calls;

    function onCrossChainMessage(string calldata, address, bytes calldata)
        external
        returns (bytes memory)
    {
        calls += 1;
        return "";
    }
}
