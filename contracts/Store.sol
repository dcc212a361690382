// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// A call that writes storage and emits an event: the devnode benchmark and proof tests use it.
contract Store {
    uint256 public value;
    mapping(uint256 => uint256) public history;

    event ValueSet(address indexed sender, uint256 indexed index, uint256 value);

    function set(uint256 newValue) external returns (uint256) {
        value = newValue;
        history[newValue] = block.number;
        emit ValueSet(msg.sender, newValue, newValue);
        return newValue;
    }

    function get() external view returns (uint256) {
        return value;
    }
}
