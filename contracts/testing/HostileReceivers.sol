// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// Receivers that try to break a delivery batch (relay-protocol requirement 9), and a plain one.

/// Records the last delivery and returns the payload.
contract EchoReceiver {
    string public lastSrcChain;
    address public lastSender;
    bytes public lastPayload;
    address public lastCaller;
    uint256 public calls;

    function onCrossChainMessage(string calldata srcChain, address sender, bytes calldata payload)
        external
        returns (bytes memory)
    {
        lastSrcChain = srcChain;
        lastSender = sender;
        lastPayload = payload;
        lastCaller = msg.sender;
        calls += 1;
        return payload;
    }
}

/// Reverts with Error("nope").
contract RevertingReceiver {
    function onCrossChainMessage(string calldata, address, bytes calldata)
        external
        pure
        returns (bytes memory)
    {
        revert("nope");
    }
}

/// Burns all the gas it is given.
contract GasBurner {
    uint256 public counter;

    function onCrossChainMessage(string calldata, address, bytes calldata)
        external
        returns (bytes memory)
    {
        while (true) {
            counter += 1;
        }
        return "";
    }
}

/// Returns (or, when `reverts`, reverts with) `size` bytes of 0xAB, far above the gateway's cap.
contract HugeReturner {
    uint256 public immutable size;
    bool public immutable reverts;

    constructor(uint256 size_, bool reverts_) {
        size = size_;
        reverts = reverts_;
    }

    fallback() external {
        uint256 n = size;
        bool r = reverts;
        assembly {
            let p := mload(0x40)
            for { let i := 0 } lt(i, n) { i := add(i, 32) } {
                mstore(add(p, i), 0xabababababababababababababababababababababababababababababababab)
            }
            if r { revert(p, n) }
            return(p, n)
        }
    }
}

/// Returns three bytes, which do not ABI-decode as `bytes`.
contract GarbageReturner {
    fallback() external {
        assembly {
            mstore(0, 0xdeadbe0000000000000000000000000000000000000000000000000000000000)
            return(0, 3)
        }
    }
}
