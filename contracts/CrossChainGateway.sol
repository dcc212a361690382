// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title What a contract must implement to receive cross-chain messages.
/// @notice Check `msg.sender == gateway` and authorise the pair `(srcChain, sender)`, never the
/// sender alone: the same address can belong to different people on different chains.
interface ICrossChainReceiver {
    /// @return The result sealed on this chain and handed back to the sender (the gateway keeps
    /// at most MAX_RESULT_BYTES of it).
    function onCrossChainMessage(string calldata srcChain, address sender, bytes calldata payload)
        external
        returns (bytes memory);
}

/// @title What a sending contract may implement to hear the fate of its messages.
interface ICrossChainSender {
    /// @param status 1 SUCCESS, 2 FAILED, 3 EXPIRED (see CrossChainGateway).
    function onCrossChainAck(bytes32 id, uint8 status, bytes calldata result) external;
}

/// @title CrossChainGateway: one source for Ethereum-compatible chains and FISCO BCOS 3.x.
/// @notice Sends messages (MessageSent), delivers messages relayed from other chains
/// (MessageDelivered), records acknowledgements (MessageAcknowledged), and commits what it sent
/// and delivered in seals (Sealed), the only evidence a relay accepts on FISCO BCOS.
///
/// Hashes (keccak256 is SM3 on an SM chain: that EVM's KECCAK256 opcode is SM3):
///   id         = keccak256(abi.encode(string srcChain, address srcGateway, string dstChain,
///                uint64 nonce, address sender, address receiver, bytes32 keccak256(payload),
///                uint64 timeout))
///   resultHash = keccak256(abi.encode(bytes32 id, string dstChain, address dstGateway,
///                uint8 status, bytes32 keccak256(result)))
///
/// Seals: a FISCO BCOS 3.x receipt hash does not fix where one log ends and the next begins, nor
/// where the output ends (docs/evidence-format.md, "FISCO log binding"). A log is evidence only
/// in a receipt with no output and exactly one log, from a transaction whose `to` and `input` are
/// pinned. `seal()` is that call: no arguments, no return value, one `Sealed` event, sent directly
/// by a relayer account (`msg.sender == tx.origin`), calling no other contract. Entries whose seal
/// cannot serve as evidence are put back by `requeue(sealNumber)`, which reads them from storage,
/// never from calldata, so no operator can seal an id that was never sent.
///
/// Not upgradeable; no selfdestruct, no delegatecall. The owner manages relayers and
/// destinations only. Relayer checks use msg.sender, never tx.origin (seal() additionally
/// requires a direct call).
contract CrossChainGateway {
    struct Message {
        string srcChain;
        address srcGateway;
        string dstChain;
        uint64 nonce;
        address sender;
        address receiver;
        bytes payload;
        uint64 timeout;
    }

    struct Result {
        bytes32 id;
        uint8 status;
        bytes result;
    }

    /// Where one seal's entries lie in the append-only queues: [start, end).
    struct SealRange {
        uint64 resultStart;
        uint64 resultEnd;
        uint64 sentStart;
        uint64 sentEnd;
    }

    uint8 public constant SUCCESS = 1;
    uint8 public constant FAILED = 2;
    uint8 public constant EXPIRED = 3;
    uint8 public constant SENT_PENDING = 1;
    uint8 public constant SENT_ACKNOWLEDGED = 2;
    /// Return or revert data kept from a receiver; more is cut off, never copied.
    uint256 public constant MAX_RESULT_BYTES = 1024;
    uint256 public constant MAX_SEAL_RESULTS = 100;
    uint256 public constant MAX_SEAL_SENT = 100;
    /// A destination's payload cap may not exceed this (64 KiB).
    uint32 public constant MAX_PAYLOAD_LIMIT = 65536;
    /// Gas beyond a callee's allowance that must be left before the call (the CALL itself).
    uint256 public constant CALL_RESERVE_GAS = 10000;

    string public chainName;
    bytes32 private immutable _chainNameHash;
    /// 1 where block.timestamp is in seconds (Ethereum), 1000 where it is in ms (FISCO BCOS).
    uint32 public immutable timestampUnitsPerSecond;
    /// The exact gas each receiver call gets.
    uint32 public immutable receiverGas;
    /// The exact gas each acknowledgement callback gets.
    uint32 public immutable ackGas;

    address public owner;
    mapping(address => bool) public isRelayer;
    /// Payload cap per destination chain; 0: unknown (sendMessage reverts).
    mapping(string => uint32) public maxPayload;
    mapping(string => uint64) private _lastNonce;
    /// 0 unknown, 1 pending, 2 acknowledged.
    mapping(bytes32 => uint8) public sentState;
    mapping(bytes32 => address) private _sender;
    /// 0 none, else SUCCESS, FAILED or EXPIRED.
    mapping(bytes32 => uint8) public deliveryStatus;

    bytes32[] private _sentQueue;
    uint256 private _sentHead;
    bytes32[] private _resultQueue;
    uint256 private _resultHead;
    mapping(uint64 => SealRange) private _seals;
    /// Seals whose entries were put back once; a seal is requeued at most once, so no entry is
    /// ever queued twice from the same seal (its re-emission has a seal number of its own).
    mapping(uint64 => bool) public requeued;
    uint64 public sealCount;
    uint256 private _lock = 1;

    event MessageSent(
        bytes32 indexed id,
        string srcChain,
        string dstChain,
        uint64 nonce,
        address sender,
        address receiver,
        bytes payload,
        uint64 timeout
    );
    event MessageDelivered(
        bytes32 indexed id, bytes32 indexed resultHash, string srcChain, uint8 status, bytes result
    );
    event MessageAcknowledged(bytes32 indexed id, uint8 status);
    event Sealed(uint64 indexed sealNumber, bytes32[] sentIds, bytes32[] resultHashes);
    event Requeued(uint64 indexed sealNumber);
    event RelayerAdded(address indexed relayer);
    event RelayerRemoved(address indexed relayer);
    event DestinationSet(string chain, uint32 maxPayloadBytes);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner();
    error NotRelayer();
    error NotDirectCall();
    error Reentrant();
    error InvalidChainName();
    error InvalidParameter();
    error UnknownDestination();
    error PayloadTooLarge(uint256 size, uint32 maxPayloadBytes);
    error ZeroTimeout();
    error LengthMismatch();
    error InvalidStatus(uint8 status);
    error InsufficientGas();
    error NothingToSeal();
    error UnknownSeal(uint64 sealNumber);
    error AlreadyRequeued(uint64 sealNumber);
    error UnexpectedCallData();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    modifier onlyRelayer() {
        if (!isRelayer[msg.sender]) revert NotRelayer();
        _;
    }

    modifier nonReentrant() {
        if (_lock != 1) revert Reentrant();
        _lock = 2;
        _;
        _lock = 1;
    }

    constructor(
        string memory chainName_,
        uint32 timestampUnitsPerSecond_,
        uint32 receiverGas_,
        uint32 ackGas_
    ) {
        _checkChainName(chainName_);
        if (timestampUnitsPerSecond_ == 0 || receiverGas_ == 0 || ackGas_ == 0) {
            revert InvalidParameter();
        }
        chainName = chainName_;
        _chainNameHash = keccak256(bytes(chainName_));
        timestampUnitsPerSecond = timestampUnitsPerSecond_;
        receiverGas = receiverGas_;
        ackGas = ackGas_;
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    // ----------------------------------------------------------------------------- owner

    function addRelayer(address relayer) external onlyOwner {
        if (relayer == address(0)) revert InvalidParameter();
        isRelayer[relayer] = true;
        emit RelayerAdded(relayer);
    }

    function removeRelayer(address relayer) external onlyOwner {
        isRelayer[relayer] = false;
        emit RelayerRemoved(relayer);
    }

    /// @param maxPayloadBytes the payload cap for messages to `chain`, at most
    /// MAX_PAYLOAD_LIMIT; 0 disables the destination.
    function setDestination(string calldata chain, uint32 maxPayloadBytes) external onlyOwner {
        _checkChainName(chain);
        if (maxPayloadBytes > MAX_PAYLOAD_LIMIT) revert InvalidParameter();
        maxPayload[chain] = maxPayloadBytes;
        emit DestinationSet(chain, maxPayloadBytes);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert InvalidParameter();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    // ----------------------------------------------------------------------------- views

    /// The nonce the next message to `dst` gets (nonces start at 1 per destination).
    function nextNonce(string calldata dst) external view returns (uint64) {
        return _lastNonce[dst] + 1;
    }

    /// Entries appended and not yet taken by a seal.
    function pending() external view returns (uint256 sent, uint256 results) {
        return (_sentQueue.length - _sentHead, _resultQueue.length - _resultHead);
    }

    // ----------------------------------------------------------------------------- send

    /// @param timeout destination-chain time in seconds from which the message expires (> 0).
    function sendMessage(
        string calldata dstChain,
        address receiver,
        bytes calldata payload,
        uint64 timeout
    ) external returns (bytes32 id) {
        uint32 cap = maxPayload[dstChain];
        if (cap == 0) revert UnknownDestination();
        if (payload.length > cap) revert PayloadTooLarge(payload.length, cap);
        if (timeout == 0) revert ZeroTimeout();
        uint64 nonce = _lastNonce[dstChain] + 1;
        _lastNonce[dstChain] = nonce;
        id = keccak256(
            abi.encode(
                chainName,
                address(this),
                dstChain,
                nonce,
                msg.sender,
                receiver,
                keccak256(payload),
                timeout
            )
        );
        sentState[id] = SENT_PENDING;
        _sender[id] = msg.sender;
        _sentQueue.push(id);
        emit MessageSent(id, chainName, dstChain, nonce, msg.sender, receiver, payload, timeout);
    }

    // ----------------------------------------------------------------------------- deliver

    /// Delivers verified messages. `ids[i]` is the id the relay checked against messages[i]
    /// with the source chain's hash (it may be SM3, which this chain cannot compute). Items for
    /// another chain are skipped without a trace; an id already delivered is skipped, so a
    /// retried batch is safe.
    function deliverMessages(bytes32[] calldata ids, Message[] calldata messages)
        external
        onlyRelayer
        nonReentrant
    {
        if (ids.length != messages.length) revert LengthMismatch();
        for (uint256 i = 0; i < ids.length; i++) {
            Message calldata m = messages[i];
            if (keccak256(bytes(m.dstChain)) != _chainNameHash) continue;
            bytes32 id = ids[i];
            if (deliveryStatus[id] != 0) continue;
            (uint8 status, bytes memory result) = _deliver(m);
            deliveryStatus[id] = status;
            bytes32 resultHash = keccak256(
                abi.encode(id, chainName, address(this), status, keccak256(result))
            );
            _resultQueue.push(resultHash);
            emit MessageDelivered(id, resultHash, m.srcChain, status, result);
        }
    }

    function _deliver(Message calldata m) private returns (uint8, bytes memory) {
        if (block.timestamp / timestampUnitsPerSecond >= m.timeout) return (EXPIRED, "");
        if (m.receiver.code.length == 0) return (FAILED, "");
        bytes memory data = abi.encodeCall(
            ICrossChainReceiver.onCrossChainMessage, (m.srcChain, m.sender, m.payload)
        );
        (bool ok, bytes memory result) = _boundedCall(m.receiver, receiverGas, data);
        return (ok ? SUCCESS : FAILED, result);
    }

    /// Calls `target` with exactly `allowance` gas and keeps at most MAX_RESULT_BYTES of what it
    /// returns, never decoding it. Reverts (the whole transaction) unless enough gas is left for
    /// the callee to get its full allowance, so a too-low gas limit can never be recorded as the
    /// callee's failure.
    function _boundedCall(address target, uint256 allowance, bytes memory data)
        private
        returns (bool ok, bytes memory result)
    {
        if (gasleft() < (allowance * 64) / 63 + CALL_RESERVE_GAS) revert InsufficientGas();
        uint256 cap = MAX_RESULT_BYTES;
        assembly {
            ok := call(allowance, target, 0, add(data, 32), mload(data), 0, 0)
            let size := returndatasize()
            if gt(size, cap) { size := cap }
            result := mload(0x40)
            mstore(result, size)
            returndatacopy(add(result, 32), 0, size)
            mstore(0x40, add(add(result, 32), and(add(size, 31), not(31))))
        }
    }

    // ----------------------------------------------------------------------------- acknowledge

    /// Records verified delivery results of messages sent here and tells contract senders.
    /// Unknown or already acknowledged ids are skipped; a status other than 1-3 reverts.
    function acknowledgeResults(Result[] calldata results) external onlyRelayer nonReentrant {
        for (uint256 i = 0; i < results.length; i++) {
            Result calldata r = results[i];
            if (r.status < SUCCESS || r.status > EXPIRED) revert InvalidStatus(r.status);
            if (sentState[r.id] != SENT_PENDING) continue;
            sentState[r.id] = SENT_ACKNOWLEDGED;
            emit MessageAcknowledged(r.id, r.status);
            address sender = _sender[r.id];
            if (sender.code.length == 0) continue;
            bytes memory data =
                abi.encodeCall(ICrossChainSender.onCrossChainAck, (r.id, r.status, r.result));
            _boundedCall(sender, ackGas, data); // a failing callback changes nothing here
        }
    }

    // ----------------------------------------------------------------------------- seal

    /// Commits up to MAX_SEAL_RESULTS pending result hashes, then up to MAX_SEAL_SENT pending
    /// sent ids, in queue order, in one Sealed event. No arguments, no return value, one log,
    /// no call to any contract; only a relayer account calling directly.
    function seal() external onlyRelayer nonReentrant {
        if (msg.sender != tx.origin) revert NotDirectCall();
        // Exactly the 4-byte selector: a seal is evidence only when its transaction's input is
        // the pinned call data, so a seal with trailing bytes must not consume the queues.
        if (msg.data.length != 4) revert UnexpectedCallData();
        uint256 resultStart = _resultHead;
        uint256 resultEnd = _min(_resultQueue.length, resultStart + MAX_SEAL_RESULTS);
        uint256 sentStart = _sentHead;
        uint256 sentEnd = _min(_sentQueue.length, sentStart + MAX_SEAL_SENT);
        if (resultEnd == resultStart && sentEnd == sentStart) revert NothingToSeal();
        _resultHead = resultEnd;
        _sentHead = sentEnd;
        uint64 number = sealCount + 1;
        sealCount = number;
        _seals[number] = SealRange(
            uint64(resultStart), uint64(resultEnd), uint64(sentStart), uint64(sentEnd)
        );
        emit Sealed(
            number,
            _slice(_sentQueue, sentStart, sentEnd),
            _slice(_resultQueue, resultStart, resultEnd)
        );
    }

    /// Puts a seal's entries (from storage) back at the end of the queues, so that the next
    /// seal() emits them again. Never evidence itself.
    function requeue(uint64 sealNumber) external onlyRelayer nonReentrant {
        if (sealNumber == 0 || sealNumber > sealCount) revert UnknownSeal(sealNumber);
        if (requeued[sealNumber]) revert AlreadyRequeued(sealNumber);
        requeued[sealNumber] = true;
        SealRange memory s = _seals[sealNumber];
        for (uint256 i = s.resultStart; i < s.resultEnd; i++) {
            _resultQueue.push(_resultQueue[i]);
        }
        for (uint256 i = s.sentStart; i < s.sentEnd; i++) {
            _sentQueue.push(_sentQueue[i]);
        }
        emit Requeued(sealNumber);
    }

    // ----------------------------------------------------------------------------- helpers

    function _slice(bytes32[] storage queue, uint256 start, uint256 end)
        private
        view
        returns (bytes32[] memory out)
    {
        out = new bytes32[](end - start);
        for (uint256 i = start; i < end; i++) {
            out[i - start] = queue[i];
        }
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }

    /// `^[a-z0-9][a-z0-9-]{0,31}$`
    function _checkChainName(string memory name) private pure {
        bytes memory b = bytes(name);
        if (b.length == 0 || b.length > 32) revert InvalidChainName();
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            bool ok = (c >= "a" && c <= "z") || (c >= "0" && c <= "9") || (i > 0 && c == "-");
            if (!ok) revert InvalidChainName();
        }
    }
}
