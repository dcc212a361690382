// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// An attacker's contract for the forgery tests: any call returns, and revertWithBlob() reverts
/// with, raw bytes loaded before, e.g. bytes shaped like another contract's log (address text,
/// topics, data). A FISCO receipt hash cannot tell such output from a log, so the verifier must.
contract LogShaped {
    bytes private blob;

    function load(bytes calldata b) external {
        blob = b;
    }

    function revertWithBlob() external view {
        bytes memory b = blob;
        assembly {
            revert(add(b, 32), mload(b))
        }
    }

    fallback() external {
        bytes memory b = blob;
        assembly {
            return(add(b, 32), mload(b))
        }
    }
}
