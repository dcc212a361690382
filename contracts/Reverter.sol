// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// Reverts with a reason string, so tests see the node's status 16 and the Error(string) output.
contract Reverter {
    uint256 public touched;

    function fail(uint256 x) external returns (uint256) {
        touched = x;
        require(x == 0, "Reverter: x must be zero");
        return x;
    }
}
