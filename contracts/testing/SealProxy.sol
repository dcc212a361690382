// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

interface IGatewayRelayerCalls {
    function seal() external;
    function requeue(uint64 sealNumber) external;
}

/// A contract that a careless owner made a relayer: it calls seal() through itself, and, as a
/// receiver, tries to seal and requeue during a delivery. The gateway refuses all of it
/// (seal() needs msg.sender == tx.origin; deliver, seal and requeue are non-reentrant).
contract SealProxy {
    address public immutable gateway;

    constructor(address gateway_) {
        gateway = gateway_;
    }

    function sealVia() external {
        IGatewayRelayerCalls(gateway).seal();
    }

    /// Returns abi.encode(sealSucceeded, requeueSucceeded).
    function onCrossChainMessage(string calldata, address, bytes calldata)
        external
        returns (bytes memory)
    {
        (bool sealOk, ) = gateway.call(abi.encodeCall(IGatewayRelayerCalls.seal, ()));
        (bool requeueOk, ) = gateway.call(abi.encodeCall(IGatewayRelayerCalls.requeue, (1)));
        return abi.encode(sealOk, requeueOk);
    }
}
