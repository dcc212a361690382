// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// A look-alike gateway for the tests: its argument-free seal() emits a Sealed event, with the
/// real one's signature, naming whatever ids were loaded before. Only the log's address tells it
/// from the real gateway's, which is why adapters filter logs by the configured gateway address
/// (relay-protocol requirement 1).
contract FakeGateway {
    bytes32[] private _sent;
    bytes32[] private _results;
    uint64 public sealCount;

    event Sealed(uint64 indexed sealNumber, bytes32[] sentIds, bytes32[] resultHashes);

    function load(bytes32[] calldata sentIds, bytes32[] calldata resultHashes) external {
        _sent = sentIds;
        _results = resultHashes;
    }

    function seal() external {
        sealCount += 1;
        emit Sealed(sealCount, _sent, _results);
    }
}
