// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";
import {IAccessLedger} from "./interfaces/IAccessLedger.sol";

/**
 * @title AccessLedger
 * @notice Requests, consent, grants, receipts and supervision. See {IAccessLedger} and
 * docs/contracts.md.
 *
 * The contract also publishes the EIP-712 domain (ERC-5267 `eip712Domain()`, name
 * "govshare", version "1", this contract as verifying contract) that brokers bind their
 * signed exchange requests to; the signatures themselves are checked off chain.
 */
contract AccessLedger is IAccessLedger, EIP712 {
    // Bounds on what a member writes (see {IAccessLedger} and docs/contracts.md): every
    // member's software must be able to read back whatever another member stored.
    // A year and ten years, counting leap days, and at least a day more than
    // clients let a clerk ask for: a client clock ahead of the block time never
    // turns an allowed duration into a refusal.
    uint64 private constant _DEADLINE_HORIZON = 366 days;
    uint64 private constant _EXPIRY_HORIZON = 3653 days;
    uint256 private constant _MAX_TEXT_LENGTH = 8192;
    uint256 private constant _MAX_CID_LENGTH = 128;
    uint64 private constant _MAX_RECEIPTS_PER_BATCH = 100_000;

    IConsortiumRegistry private immutable _registry;
    IRecordRegistry private immutable _records;

    /// How an owner shares a category, as {IRecordRegistry-categorySharing} says.
    struct Sharing {
        bool declared;
        IRecordRegistry.SharingType kind;
        uint64 ttl;
        uint32 uses;
    }

    uint256 private _requestCount;
    mapping(uint256 requestId => Request) private _requests;
    mapping(bytes32 recordId => uint256[]) private _requestsByRecord;

    /// Each department's receipt batches; the last one's `lastSeq` is where the next starts.
    mapping(bytes32 department => ReceiptBatch[]) private _receiptBatches;

    /**
     * @notice Binds the ledger to the consortium registry and the record registry.
     *
     * Requirements:
     * - neither `registry_` nor `records_` is the zero address.
     */
    constructor(IConsortiumRegistry registry_, IRecordRegistry records_) EIP712("govshare", "1") {
        if (address(registry_) == address(0)) revert AccessLedgerZeroRegistry();
        if (address(records_) == address(0)) revert AccessLedgerZeroRecords();
        _registry = registry_;
        _records = records_;
    }

    // ----------------------------------------------------------------- requests

    /// @inheritdoc IAccessLedger
    function requestAccess(
        bytes32 ownerDepartment,
        bytes32 recordId,
        string calldata purpose,
        string calldata legalBasis,
        uint64 deadline
    ) external returns (uint256 requestId) {
        bytes32 requester = _requireRequester(ownerDepartment);
        Sharing memory sharing = _recordSharing(ownerDepartment, recordId);
        _checkRequestTerms(purpose, legalBasis, deadline);

        requestId = _newRequest(requester, ownerDepartment, recordId, purpose, legalBasis, deadline);
        _requestsByRecord[recordId].push(requestId);
        _grantIfUnconditional(requestId, sharing);
    }

    /// @inheritdoc IAccessLedger
    function requestBySubject(
        bytes32 ownerDepartment,
        bytes32 category,
        bytes32 subjectRef,
        bool latestOnly,
        string calldata purpose,
        string calldata legalBasis,
        uint64 deadline
    ) external returns (uint256 requestId) {
        bytes32 requester = _requireRequester(ownerDepartment);
        if (subjectRef == bytes32(0)) revert AccessLedgerEmptySubject();
        Sharing memory sharing = _sharing(ownerDepartment, category);
        if (!sharing.declared) revert AccessLedgerUnknownCategory(ownerDepartment, category);
        _checkRequestTerms(purpose, legalBasis, deadline);

        requestId = _newRequest(requester, ownerDepartment, bytes32(0), purpose, legalBasis, deadline);
        Request storage r = _requests[requestId];
        r.category = category;
        r.subjectRef = subjectRef;
        r.latestOnly = latestOnly;
        emit SubjectRequested(requestId, ownerDepartment, category, subjectRef, latestOnly);
        _grantIfUnconditional(requestId, sharing);
    }

    /// @inheritdoc IAccessLedger
    function approve(uint256 requestId, bytes32 scope, uint64 expiresAt, uint32 maxUses) external {
        Request storage r = _requireOwnerAdmin(requestId);
        if (r.status != RequestStatus.Pending) revert AccessLedgerRequestNotPending(requestId, r.status);
        bytes32 requester = r.requesterDepartment;
        if (_registry.departmentStatus(requester) != IConsortiumRegistry.DepartmentStatus.Active) {
            revert AccessLedgerDepartmentNotActive(requester);
        }
        if (expiresAt <= block.timestamp) revert AccessLedgerInvalidExpiry(expiresAt, uint64(block.timestamp));
        uint64 latestExpiry = uint64(block.timestamp) + _EXPIRY_HORIZON;
        if (expiresAt > latestExpiry) revert AccessLedgerExpiryTooFar(expiresAt, latestExpiry);
        if (maxUses == 0) revert AccessLedgerInvalidMaxUses();
        _grant(requestId, scope, expiresAt, maxUses, msg.sender);
    }

    /// @inheritdoc IAccessLedger
    function deny(uint256 requestId, string calldata reason) external {
        Request storage r = _requireOwnerAdmin(requestId);
        if (r.status != RequestStatus.Pending) revert AccessLedgerRequestNotPending(requestId, r.status);
        _checkReason(reason);
        r.status = RequestStatus.Denied;
        r.decidedBy = msg.sender;
        r.decidedAt = uint64(block.timestamp);
        r.denyReason = reason;
        emit AccessDenied(requestId, r.ownerDepartment, r.requesterDepartment, reason, msg.sender);
    }

    /// @inheritdoc IAccessLedger
    function revoke(uint256 grantId, string calldata reason) external {
        Request storage r = _requireOwnerAdmin(grantId);
        if (r.status != RequestStatus.Approved) revert AccessLedgerGrantNotApproved(grantId, r.status);
        _checkReason(reason);
        r.status = RequestStatus.Revoked;
        r.revokedBy = msg.sender;
        r.revokedAt = uint64(block.timestamp);
        r.revokeReason = reason;
        emit AccessRevoked(grantId, r.ownerDepartment, r.requesterDepartment, reason, msg.sender);
    }

    // ----------------------------------------------------------------- receipts

    /// @inheritdoc IAccessLedger
    function anchorReceipts(
        bytes32 root,
        uint64 firstSeq,
        uint64 lastSeq,
        string calldata manifestCid,
        uint256[] calldata grantIds,
        uint32[] calldata uses
    ) external returns (uint256 batchIndex) {
        bytes32 dept = _requireActiveBroker();
        _checkReceiptRange(dept, root, firstSeq, lastSeq, bytes(manifestCid).length);
        _checkReceiptUses(grantIds, uses, lastSeq - firstSeq + 1);
        batchIndex = _receiptBatches[dept].length + 1;
        // Each grant is checked right before its uses are added, not all first: a grant
        // listed twice must meet its quota with the uses of both entries.
        for (uint256 i = 0; i < grantIds.length; ++i) {
            _recordUses(dept, batchIndex, grantIds[i], uses[i]);
        }
        _storeReceiptBatch(dept, batchIndex, root, firstSeq, lastSeq, manifestCid);
    }

    // -------------------------------------------------------------- supervision

    /// @inheritdoc IAccessLedger
    function remind(uint256 requestId) external {
        Request storage r = _requireOverdueByRequester(requestId);
        uint32 count = ++r.reminderCount;
        r.lastRemindedAt = uint64(block.timestamp);
        emit RequestReminded(requestId, r.requesterDepartment, r.ownerDepartment, count, msg.sender);
    }

    /// @inheritdoc IAccessLedger
    function escalate(uint256 requestId) external {
        Request storage r = _requireOverdueByRequester(requestId);
        address[] memory sups = _registry.supervisors();
        if (sups.length == 0) revert AccessLedgerNoSupervisors();
        uint32 count = ++r.escalationCount;
        r.lastEscalatedAt = uint64(block.timestamp);
        emit RequestEscalated(requestId, r.requesterDepartment, r.ownerDepartment, count, sups, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IAccessLedger
    function deadlineHorizon() external pure returns (uint64) {
        return _DEADLINE_HORIZON;
    }

    /// @inheritdoc IAccessLedger
    function expiryHorizon() external pure returns (uint64) {
        return _EXPIRY_HORIZON;
    }

    /// @inheritdoc IAccessLedger
    function maxTextLength() external pure returns (uint256) {
        return _MAX_TEXT_LENGTH;
    }

    /// @inheritdoc IAccessLedger
    function maxCidLength() external pure returns (uint256) {
        return _MAX_CID_LENGTH;
    }

    /// @inheritdoc IAccessLedger
    function maxReceiptsPerBatch() external pure returns (uint64) {
        return _MAX_RECEIPTS_PER_BATCH;
    }

    /// @inheritdoc IAccessLedger
    function registry() external view returns (IConsortiumRegistry) {
        return _registry;
    }

    /// @inheritdoc IAccessLedger
    function records() external view returns (IRecordRegistry) {
        return _records;
    }

    /// @inheritdoc IAccessLedger
    function requestCount() external view returns (uint256) {
        return _requestCount;
    }

    /// @inheritdoc IAccessLedger
    function getRequest(uint256 requestId) external view returns (Request memory) {
        return _requireRequest(requestId);
    }

    /// @inheritdoc IAccessLedger
    function grantStatus(uint256 grantId) external view returns (bool usable, GrantReason reason) {
        Request storage r = _requests[grantId];
        RequestStatus status = r.status;
        if (status == RequestStatus.None) return (false, GrantReason.UnknownRequest);
        if (status == RequestStatus.Pending) return (false, GrantReason.Pending);
        if (status == RequestStatus.Denied) return (false, GrantReason.Denied);
        if (status == RequestStatus.Revoked) return (false, GrantReason.Revoked);
        if (!_isActive(r.ownerDepartment)) return (false, GrantReason.OwnerInactive);
        if (!_isActive(r.requesterDepartment)) return (false, GrantReason.RequesterInactive);
        if (block.timestamp >= r.expiresAt) return (false, GrantReason.Expired);
        if (r.usedCount >= r.maxUses) return (false, GrantReason.QuotaExhausted);
        return (true, GrantReason.Ok);
    }

    /// @inheritdoc IAccessLedger
    function requestsForRecord(bytes32 recordId) external view returns (uint256[] memory) {
        return _requestsByRecord[recordId];
    }

    /// @inheritdoc IAccessLedger
    function isOverdue(uint256 requestId) external view returns (bool) {
        Request storage r = _requests[requestId];
        return r.status == RequestStatus.Pending && block.timestamp > r.deadline;
    }

    /// @inheritdoc IAccessLedger
    function lastReceiptSeq(bytes32 department) public view returns (uint64) {
        ReceiptBatch[] storage batches = _receiptBatches[department];
        uint256 n = batches.length;
        return n == 0 ? 0 : batches[n - 1].lastSeq;
    }

    /// @inheritdoc IAccessLedger
    function receiptBatchCount(bytes32 department) external view returns (uint256) {
        return _receiptBatches[department].length;
    }

    /// @inheritdoc IAccessLedger
    function getReceiptBatch(bytes32 department, uint256 index) external view returns (ReceiptBatch memory) {
        if (index == 0 || index > _receiptBatches[department].length) {
            revert AccessLedgerUnknownReceiptBatch(department, index);
        }
        return _receiptBatches[department][index - 1];
    }

    // --------------------------------------------------------------- internals

    /// @dev The caller's department, which must be active, with the caller as its broker.
    function _requireActiveBroker() private view returns (bytes32 dept) {
        IConsortiumRegistry.AccountRole role;
        (dept, role) = _registry.departmentOf(msg.sender);
        if (role != IConsortiumRegistry.AccountRole.Broker || !_isActive(dept)) {
            revert AccessLedgerNotActiveBroker(msg.sender);
        }
    }

    /// @dev Whether `dept` is active in the registry.
    function _isActive(bytes32 dept) private view returns (bool) {
        return _registry.departmentStatus(dept) == IConsortiumRegistry.DepartmentStatus.Active;
    }

    /// @dev Request `requestId`, reverting when it does not exist.
    function _requireRequest(uint256 requestId) private view returns (Request storage r) {
        r = _requests[requestId];
        if (r.status == RequestStatus.None) revert AccessLedgerUnknownRequest(requestId);
    }

    /// @dev Request `requestId`, whose owning department is active with the caller as an admin.
    function _requireOwnerAdmin(uint256 requestId) private view returns (Request storage r) {
        r = _requireRequest(requestId);
        if (!_registry.isActiveAdmin(r.ownerDepartment, msg.sender)) {
            revert AccessLedgerNotOwnerAdmin(requestId, msg.sender);
        }
    }

    /// @dev Pending, overdue request `requestId`, called by its requesting department's
    /// broker or admin while that department is active.
    function _requireOverdueByRequester(uint256 requestId) private view returns (Request storage r) {
        r = _requireRequest(requestId);
        (bytes32 dept, IConsortiumRegistry.AccountRole role) = _registry.departmentOf(msg.sender);
        if (dept != r.requesterDepartment || role == IConsortiumRegistry.AccountRole.None || !_isActive(dept)) {
            revert AccessLedgerNotRequesterAccount(requestId, msg.sender);
        }
        if (r.status != RequestStatus.Pending) revert AccessLedgerRequestNotPending(requestId, r.status);
        if (block.timestamp <= r.deadline) revert AccessLedgerNotOverdue(requestId, r.deadline);
    }

    /// @dev The caller's department, asking active `ownerDepartment` (not itself).
    function _requireRequester(bytes32 ownerDepartment) private view returns (bytes32 requester) {
        requester = _requireActiveBroker();
        if (_registry.departmentStatus(ownerDepartment) != IConsortiumRegistry.DepartmentStatus.Active) {
            revert AccessLedgerDepartmentNotActive(ownerDepartment);
        }
        if (ownerDepartment == requester) revert AccessLedgerSelfRequest(requester);
    }

    /// @dev Reverts unless a request's purpose, legal basis and deadline are acceptable.
    function _checkRequestTerms(string calldata purpose, string calldata legalBasis, uint64 deadline) private view {
        if (bytes(purpose).length == 0) revert AccessLedgerEmptyPurpose();
        if (bytes(purpose).length > _MAX_TEXT_LENGTH) {
            revert AccessLedgerPurposeTooLong(bytes(purpose).length, _MAX_TEXT_LENGTH);
        }
        if (bytes(legalBasis).length > _MAX_TEXT_LENGTH) {
            revert AccessLedgerLegalBasisTooLong(bytes(legalBasis).length, _MAX_TEXT_LENGTH);
        }
        if (deadline <= block.timestamp) revert AccessLedgerInvalidDeadline(deadline, uint64(block.timestamp));
        uint64 latestDeadline = uint64(block.timestamp) + _DEADLINE_HORIZON;
        if (deadline > latestDeadline) revert AccessLedgerDeadlineTooFar(deadline, latestDeadline);
    }

    /// @dev How `ownerDepartment` shares `category`; reverts if it does not share it.
    function _sharing(bytes32 ownerDepartment, bytes32 category) private view returns (Sharing memory s) {
        (s.declared,, s.kind, s.ttl, s.uses) = _records.categorySharing(ownerDepartment, category);
        if (s.kind == IRecordRegistry.SharingType.None) {
            revert AccessLedgerCategoryNotShared(ownerDepartment, category);
        }
    }

    /// @dev How `ownerDepartment`, which must own record `recordId`, shares its category;
    /// reverts if it does not share it.
    function _recordSharing(bytes32 ownerDepartment, bytes32 recordId) private view returns (Sharing memory s) {
        bytes32 actualOwner;
        bytes32 category;
        (actualOwner, category, s.kind, s.ttl, s.uses) = _records.recordSharing(recordId);
        if (actualOwner == bytes32(0)) revert AccessLedgerUnknownRecord(recordId);
        if (actualOwner != ownerDepartment) {
            revert AccessLedgerRecordNotOwned(recordId, ownerDepartment, actualOwner);
        }
        if (s.kind == IRecordRegistry.SharingType.None) {
            revert AccessLedgerCategoryNotShared(ownerDepartment, category);
        }
        s.declared = true;
    }

    /// @dev Stores a new pending request and emits {AccessRequested}.
    function _newRequest(
        bytes32 requester,
        bytes32 ownerDepartment,
        bytes32 recordId,
        string calldata purpose,
        string calldata legalBasis,
        uint64 deadline
    ) private returns (uint256 requestId) {
        requestId = ++_requestCount;
        Request storage r = _requests[requestId];
        r.requesterDepartment = requester;
        r.ownerDepartment = ownerDepartment;
        r.recordId = recordId;
        r.purpose = purpose;
        r.legalBasis = legalBasis;
        r.deadline = deadline;
        r.requestedBy = msg.sender;
        r.requestedAt = uint64(block.timestamp);
        r.status = RequestStatus.Pending;
        emit AccessRequested(requestId, requester, ownerDepartment, recordId, purpose, legalBasis, deadline, msg.sender);
    }

    /// @dev Grants new request `requestId` at once, as this contract, on its category's
    /// defaults if the category is shared unconditionally.
    function _grantIfUnconditional(uint256 requestId, Sharing memory sharing) private {
        if (sharing.kind != IRecordRegistry.SharingType.Unconditional) return;
        _grant(requestId, bytes32(0), uint64(block.timestamp) + sharing.ttl, sharing.uses, address(this));
    }

    /// @dev Turns pending request `requestId` into a grant decided by `by` (after every check).
    function _grant(uint256 requestId, bytes32 scope, uint64 expiresAt, uint32 maxUses, address by) private {
        Request storage r = _requests[requestId];
        r.status = RequestStatus.Approved;
        r.decidedBy = by;
        r.decidedAt = uint64(block.timestamp);
        r.scope = scope;
        r.expiresAt = expiresAt;
        r.maxUses = maxUses;
        emit AccessApproved(
            requestId, r.ownerDepartment, r.requesterDepartment, r.recordId, scope, expiresAt, maxUses, by
        );
    }

    /// @dev Reverts unless a denial or revocation reason is present and not too long.
    function _checkReason(string calldata reason) private pure {
        uint256 length = bytes(reason).length;
        if (length == 0) revert AccessLedgerEmptyReason();
        if (length > _MAX_TEXT_LENGTH) revert AccessLedgerReasonTooLong(length, _MAX_TEXT_LENGTH);
    }

    /// @dev Reverts unless the batch's root, manifest and range are acceptable for `dept`.
    function _checkReceiptRange(bytes32 dept, bytes32 root, uint64 firstSeq, uint64 lastSeq, uint256 cidLength)
        private
        view
    {
        if (root == bytes32(0)) revert AccessLedgerEmptyReceiptRoot();
        if (cidLength == 0) revert AccessLedgerEmptyCid();
        if (cidLength > _MAX_CID_LENGTH) revert AccessLedgerCidTooLong(cidLength, _MAX_CID_LENGTH);
        if (lastSeq < firstSeq) revert AccessLedgerInvalidReceiptRange(firstSeq, lastSeq);
        uint64 expected = lastReceiptSeq(dept) + 1;
        if (firstSeq != expected) revert AccessLedgerReceiptRangeNotContiguous(dept, expected, firstSeq);
        // firstSeq >= 1 here, so the count cannot overflow
        if (lastSeq - firstSeq >= _MAX_RECEIPTS_PER_BATCH) {
            revert AccessLedgerReceiptBatchTooLarge(lastSeq - firstSeq + 1, _MAX_RECEIPTS_PER_BATCH);
        }
    }

    /// @dev Reverts unless `uses` matches `grantIds`, has no zero entry and adds up to `receipts`.
    function _checkReceiptUses(uint256[] calldata grantIds, uint32[] calldata uses, uint64 receipts)
        private
        pure
    {
        if (grantIds.length != uses.length) revert AccessLedgerLengthMismatch(grantIds.length, uses.length);
        uint256 total = 0;
        for (uint256 i = 0; i < uses.length; ++i) {
            if (uses[i] == 0) revert AccessLedgerZeroUses(grantIds[i]);
            total += uses[i];
        }
        if (total != receipts) revert AccessLedgerReceiptCountMismatch(receipts, total);
    }

    /// @dev Appends `dept`'s receipt batch number `batchIndex` (which advances its sequence)
    /// and emits {ReceiptsAnchored}.
    function _storeReceiptBatch(
        bytes32 dept,
        uint256 batchIndex,
        bytes32 root,
        uint64 firstSeq,
        uint64 lastSeq,
        string calldata manifestCid
    ) private {
        ReceiptBatch storage b = _receiptBatches[dept].push();
        b.root = root;
        b.firstSeq = firstSeq;
        b.lastSeq = lastSeq;
        b.manifestCid = manifestCid;
        b.anchoredBy = msg.sender;
        b.anchoredAt = uint64(block.timestamp);
        emit ReceiptsAnchored(dept, batchIndex, root, firstSeq, lastSeq, manifestCid, msg.sender);
    }

    /// @dev Adds `uses` (> 0) anchored uses to grant `grantId`, which `dept` must own.
    function _recordUses(bytes32 dept, uint256 batchIndex, uint256 grantId, uint32 uses) private {
        Request storage r = _requests[grantId];
        if (r.status != RequestStatus.Approved && r.status != RequestStatus.Revoked) {
            revert AccessLedgerGrantNotApproved(grantId, r.status);
        }
        if (r.ownerDepartment != dept) revert AccessLedgerGrantNotOwned(grantId, r.ownerDepartment, dept);
        uint32 used = r.usedCount;
        if (uint256(used) + uses > r.maxUses) revert AccessLedgerQuotaExceeded(grantId, used, uses, r.maxUses);
        r.usedCount = used + uses;
        emit GrantUsesRecorded(grantId, dept, batchIndex, uses, used + uses);
    }
}
