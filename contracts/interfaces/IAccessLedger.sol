// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortiumRegistry} from "./IConsortiumRegistry.sol";
import {IRecordRegistry} from "./IRecordRegistry.sol";

/**
 * @title IAccessLedger
 * @notice Requests for another department's records, the owning department's consent
 * (approve / deny / revoke, signed by one of its *admin* accounts, never a broker),
 * grants with scope, expiry and quota, anchored access-receipt batches, and the
 * supervision loop (reminders and escalation of overdue requests).
 *
 * A grant is an approved request and has the request's id. Ids are sequential from 1.
 * Times are block timestamps in seconds: a grant is usable while
 * `block.timestamp < expiresAt`; a request is overdue once `block.timestamp > deadline`.
 *
 * Every value a member writes is bounded, so that no member can store one that another
 * member's software cannot read back: a deadline at most {deadlineHorizon} ahead, an
 * expiry at most {expiryHorizon} ahead, texts of at most {maxTextLength} bytes, CIDs of
 * at most {maxCidLength} bytes and receipt batches of at most {maxReceiptsPerBatch}.
 */
interface IAccessLedger {
    // ------------------------------------------------------------------ types

    /// @notice Stored state of a request. Expiry of a grant is computed (see {grantStatus}).
    enum RequestStatus {
        None, // 0: no such request
        Pending, // 1: waiting for the owner's decision
        Approved, // 2: a grant (may be expired or used up: see grantStatus)
        Denied, // 3: refused by the owner's admin (final)
        Revoked // 4: was approved, then revoked by the owner's admin (final)
    }

    /// @notice Why a grant is, or is not, usable now ({grantStatus}).
    enum GrantReason {
        Ok, // 0: usable
        UnknownRequest, // 1: no such request/grant
        Pending, // 2: not decided yet
        Denied, // 3: the owner denied it
        Revoked, // 4: the owner revoked it
        OwnerInactive, // 5: the owning department is not active
        RequesterInactive, // 6: the requesting department is not active
        Expired, // 7: block.timestamp >= expiresAt
        QuotaExhausted // 8: anchored uses reached maxUses
    }

    /// @notice A request and, once decided, its decision, grant terms and supervision history,
    /// as stored under its id (the struct does not repeat the id).
    struct Request {
        bytes32 requesterDepartment;
        bytes32 ownerDepartment;
        bytes32 recordId;
        string purpose;
        string legalBasis;
        uint64 deadline; // answer expected by then
        address requestedBy; // the requester's broker account
        uint64 requestedAt;
        RequestStatus status;
        address decidedBy; // the owner's admin who approved or denied
        uint64 decidedAt;
        string denyReason;
        bytes32 scope; // grant terms (when approved)
        uint64 expiresAt;
        uint32 maxUses;
        uint32 usedCount; // uses anchored in receipt batches
        address revokedBy;
        uint64 revokedAt;
        string revokeReason;
        uint32 reminderCount;
        uint32 escalationCount;
        uint64 lastRemindedAt;
        uint64 lastEscalatedAt;
        // A request by subject ({requestBySubject}) has a zero `recordId` and names these:
        bytes32 category; // the owner's catalog category
        bytes32 subjectRef; // the consortium's keyed reference of the subject
        bool latestOnly; // the grant covers the version current when it was given, only
    }

    /// @notice An anchored batch of a department's access receipts (as the owner).
    struct ReceiptBatch {
        bytes32 root; // RFC 6962 Merkle root over the receipts
        uint64 firstSeq;
        uint64 lastSeq;
        string manifestCid; // the batch's leaves, in the department's store
        address anchoredBy;
        uint64 anchoredAt;
    }

    // ----------------------------------------------------------------- errors

    /// @notice The consortium registry's address must not be zero.
    error AccessLedgerZeroRegistry();
    /// @notice The record registry's address must not be zero.
    error AccessLedgerZeroRecords();
    /// @notice `account` is not the broker account of an active department.
    error AccessLedgerNotActiveBroker(address account);
    /// @notice Department `department` is not active (or unknown).
    error AccessLedgerDepartmentNotActive(bytes32 department);
    /// @notice A department cannot request its own records.
    error AccessLedgerSelfRequest(bytes32 department);
    /// @notice No record has `recordId`.
    error AccessLedgerUnknownRecord(bytes32 recordId);
    /// @notice Record `recordId` belongs to `actualOwner`, not to `ownerDepartment`.
    error AccessLedgerRecordNotOwned(bytes32 recordId, bytes32 ownerDepartment, bytes32 actualOwner);
    /// @notice A request needs a purpose.
    error AccessLedgerEmptyPurpose();
    /// @notice The deadline `deadline` is not after the current block time `nowTime`.
    error AccessLedgerInvalidDeadline(uint64 deadline, uint64 nowTime);
    /// @notice The deadline `deadline` is more than {deadlineHorizon} after the current block
    /// time; the latest allowed now is `latestAllowed`.
    error AccessLedgerDeadlineTooFar(uint64 deadline, uint64 latestAllowed);
    /// @notice The purpose is `length` bytes long; at most `maxLength` are allowed.
    error AccessLedgerPurposeTooLong(uint256 length, uint256 maxLength);
    /// @notice The legal basis is `length` bytes long; at most `maxLength` are allowed.
    error AccessLedgerLegalBasisTooLong(uint256 length, uint256 maxLength);
    /// @notice No request has `requestId`.
    error AccessLedgerUnknownRequest(uint256 requestId);
    /// @notice `account` is not an admin account of request `requestId`'s owning department,
    /// or that department is not active.
    error AccessLedgerNotOwnerAdmin(uint256 requestId, address account);
    /// @notice `account` is neither the broker nor an admin of request `requestId`'s requesting
    /// department, or that department is not active.
    error AccessLedgerNotRequesterAccount(uint256 requestId, address account);
    /// @notice Request `requestId` is `status`, not pending.
    error AccessLedgerRequestNotPending(uint256 requestId, RequestStatus status);
    /// @notice Request `grantId` is `status`, not an approved grant.
    error AccessLedgerGrantNotApproved(uint256 grantId, RequestStatus status);
    /// @notice The expiry `expiresAt` is not after the current block time `nowTime`.
    error AccessLedgerInvalidExpiry(uint64 expiresAt, uint64 nowTime);
    /// @notice The expiry `expiresAt` is more than {expiryHorizon} after the current block
    /// time; the latest allowed now is `latestAllowed`.
    error AccessLedgerExpiryTooFar(uint64 expiresAt, uint64 latestAllowed);
    /// @notice A grant allows at least one use.
    error AccessLedgerInvalidMaxUses();
    /// @notice A denial or revocation needs a reason.
    error AccessLedgerEmptyReason();
    /// @notice The denial or revocation reason is `length` bytes long; at most `maxLength` are allowed.
    error AccessLedgerReasonTooLong(uint256 length, uint256 maxLength);
    /// @notice Request `requestId`'s deadline `deadline` has not passed yet.
    error AccessLedgerNotOverdue(uint256 requestId, uint64 deadline);
    /// @notice There is no supervisor to escalate to.
    error AccessLedgerNoSupervisors();
    /// @notice A receipt batch's root must not be zero.
    error AccessLedgerEmptyReceiptRoot();
    /// @notice A manifest CID must not be empty.
    error AccessLedgerEmptyCid();
    /// @notice The manifest CID is `length` bytes long; at most `maxLength` are allowed.
    error AccessLedgerCidTooLong(uint256 length, uint256 maxLength);
    /// @notice A batch of `receipts` receipts is more than the `maxReceipts` one batch may hold.
    error AccessLedgerReceiptBatchTooLarge(uint64 receipts, uint64 maxReceipts);
    /// @notice `lastSeq` is before `firstSeq`.
    error AccessLedgerInvalidReceiptRange(uint64 firstSeq, uint64 lastSeq);
    /// @notice `department`'s next batch must start at `expectedFirstSeq`, not `firstSeq`
    /// (a gap or an overlap).
    error AccessLedgerReceiptRangeNotContiguous(bytes32 department, uint64 expectedFirstSeq, uint64 firstSeq);
    /// @notice `grantIds` and `uses` differ in length.
    error AccessLedgerLengthMismatch(uint256 grantIdsLength, uint256 usesLength);
    /// @notice The per-grant uses add up to `uses`, but the range holds `receipts` receipts.
    error AccessLedgerReceiptCountMismatch(uint64 receipts, uint256 uses);
    /// @notice An entry of `uses` is zero for grant `grantId`.
    error AccessLedgerZeroUses(uint256 grantId);
    /// @notice Grant `grantId` is owned by `owner`, not by the anchoring department `department`.
    error AccessLedgerGrantNotOwned(uint256 grantId, bytes32 owner, bytes32 department);
    /// @notice Adding `adding` uses to grant `grantId` (at `used`) would exceed its `maxUses`.
    error AccessLedgerQuotaExceeded(uint256 grantId, uint32 used, uint32 adding, uint32 maxUses);
    /// @notice `department` has no receipt batch `index`.
    error AccessLedgerUnknownReceiptBatch(bytes32 department, uint256 index);
    /// @notice `ownerDepartment` does not share `category`'s records (its sharing type is `None`).
    error AccessLedgerCategoryNotShared(bytes32 ownerDepartment, bytes32 category);
    /// @notice `ownerDepartment` has not declared `category` in its catalog.
    error AccessLedgerUnknownCategory(bytes32 ownerDepartment, bytes32 category);
    /// @notice A request by subject needs a subject reference.
    error AccessLedgerEmptySubject();

    // ----------------------------------------------------------------- events

    /// @notice `requesterDepartment` asked `ownerDepartment` for `recordId` (request `requestId`).
    event AccessRequested(
        uint256 indexed requestId,
        bytes32 indexed requesterDepartment,
        bytes32 indexed ownerDepartment,
        bytes32 recordId,
        string purpose,
        string legalBasis,
        uint64 deadline,
        address requestedBy
    );
    /// @notice Request `requestId` (announced by the {AccessRequested} right before, with a zero
    /// record id) asks for `ownerDepartment`'s records of `category` about the subject whose
    /// keyed reference is `subjectRef`: all versions, or with `latestOnly` only the current one.
    event SubjectRequested(
        uint256 indexed requestId,
        bytes32 indexed ownerDepartment,
        bytes32 indexed category,
        bytes32 subjectRef,
        bool latestOnly
    );
    /// @notice The owner's admin `approvedBy` approved request `requestId`: it is now grant
    /// `requestId`. `approvedBy` is this contract for a category shared unconditionally.
    event AccessApproved(
        uint256 indexed requestId,
        bytes32 indexed ownerDepartment,
        bytes32 indexed requesterDepartment,
        bytes32 recordId,
        bytes32 scope,
        uint64 expiresAt,
        uint32 maxUses,
        address approvedBy
    );
    /// @notice The owner's admin `deniedBy` denied request `requestId`.
    event AccessDenied(
        uint256 indexed requestId,
        bytes32 indexed ownerDepartment,
        bytes32 indexed requesterDepartment,
        string reason,
        address deniedBy
    );
    /// @notice The owner's admin `revokedBy` revoked grant `grantId`.
    event AccessRevoked(
        uint256 indexed grantId,
        bytes32 indexed ownerDepartment,
        bytes32 indexed requesterDepartment,
        string reason,
        address revokedBy
    );
    /// @notice The requester (account `by`) reminded the owner of overdue request `requestId` (催办).
    event RequestReminded(
        uint256 indexed requestId,
        bytes32 indexed requesterDepartment,
        bytes32 indexed ownerDepartment,
        uint32 reminderCount,
        address by
    );
    /// @notice The requester (account `by`) escalated overdue request `requestId` to the
    /// supervisors listed (督办).
    event RequestEscalated(
        uint256 indexed requestId,
        bytes32 indexed requesterDepartment,
        bytes32 indexed ownerDepartment,
        uint32 escalationCount,
        address[] supervisors,
        address by
    );
    /// @notice `department`'s receipt batch `batchIndex` (receipts `firstSeq`..`lastSeq`) was anchored.
    event ReceiptsAnchored(
        bytes32 indexed department,
        uint256 indexed batchIndex,
        bytes32 indexed root,
        uint64 firstSeq,
        uint64 lastSeq,
        string manifestCid,
        address anchoredBy
    );
    /// @notice Batch `batchIndex` of `department` recorded `uses` uses of grant `grantId`
    /// (now `usedCount` in total).
    event GrantUsesRecorded(
        uint256 indexed grantId, bytes32 indexed department, uint256 indexed batchIndex, uint32 uses, uint32 usedCount
    );

    // ----------------------------------------------------------------- requests

    /**
     * @notice Asks department `ownerDepartment` for record `recordId`, on behalf of the
     * caller's department.
     * @return requestId the new request's id (sequential from 1)
     *
     * Requirements:
     * - the caller is the broker account of an active department;
     * - `ownerDepartment` is active and is not the caller's department;
     * - `recordId` exists and belongs to `ownerDepartment`;
     * - the record's category is not shared `None` by `ownerDepartment`;
     * - `purpose` is not empty (`legalBasis` may be); neither is longer than
     *   {maxTextLength} bytes;
     * - block.timestamp < `deadline` <= block.timestamp + {deadlineHorizon}.
     *
     * A record whose category is shared `Unconditional` is granted at once, by this
     * contract, on the category's default lifetime and uses ({AccessApproved} follows).
     */
    function requestAccess(
        bytes32 ownerDepartment,
        bytes32 recordId,
        string calldata purpose,
        string calldata legalBasis,
        uint64 deadline
    ) external returns (uint256 requestId);

    /**
     * @notice Asks department `ownerDepartment` for its records of `category` about the
     * subject whose keyed reference is `subjectRef`, on behalf of the caller's department.
     * The grant covers the version current when it is given and, unless `latestOnly`, the
     * versions published while it is valid (the owner's broker picks the version; each
     * receipt names it). Emits {AccessRequested} (zero record id) then {SubjectRequested}.
     * @return requestId the new request's id
     *
     * Requirements: as {requestAccess}, except that instead of a record:
     * - `ownerDepartment` declared `category` (it may have retired it since) and does not
     *   share it `None`;
     * - `subjectRef` is not zero.
     *
     * A category shared `Unconditional` is granted at once, as in {requestAccess}.
     */
    function requestBySubject(
        bytes32 ownerDepartment,
        bytes32 category,
        bytes32 subjectRef,
        bool latestOnly,
        string calldata purpose,
        string calldata legalBasis,
        uint64 deadline
    ) external returns (uint256 requestId);

    /**
     * @notice Approves request `requestId`: it becomes grant `requestId` with `scope`, valid
     * while block.timestamp < `expiresAt`, for at most `maxUses` uses.
     *
     * Requirements:
     * - the request exists;
     * - the caller is an admin account of the owning department, which is active
     *   (a broker account never is);
     * - the request is pending;
     * - the requesting department is active;
     * - block.timestamp < `expiresAt` <= block.timestamp + {expiryHorizon};
     * - `maxUses` > 0.
     */
    function approve(uint256 requestId, bytes32 scope, uint64 expiresAt, uint32 maxUses) external;

    /**
     * @notice Denies request `requestId` with `reason`.
     *
     * Requirements:
     * - the request exists;
     * - the caller is an admin account of the owning department, which is active;
     * - the request is pending;
     * - `reason` is not empty and at most {maxTextLength} bytes long.
     */
    function deny(uint256 requestId, string calldata reason) external;

    /**
     * @notice Revokes grant `grantId` with `reason`; brokers refuse it from the next block.
     *
     * Requirements:
     * - the grant exists;
     * - the caller is an admin account of the owning department, which is active;
     * - the grant is approved (not pending, denied or already revoked);
     * - `reason` is not empty and at most {maxTextLength} bytes long.
     */
    function revoke(uint256 grantId, string calldata reason) external;

    // ----------------------------------------------------------------- receipts

    /**
     * @notice Anchors the Merkle `root` of the caller's department's access receipts
     * `firstSeq`..`lastSeq` (as the owner that served them), with the uses of each grant.
     * @return batchIndex the department's batch number (1, 2, ...)
     *
     * Requirements:
     * - the caller is the broker account of an active department;
     * - `root` is not zero and `manifestCid` is not empty and at most {maxCidLength} bytes;
     * - `lastSeq` >= `firstSeq`, and `firstSeq` is exactly one after the department's last
     *   anchored sequence number (1 for the first batch): no gap, no overlap;
     * - the range holds at most {maxReceiptsPerBatch} receipts;
     * - `grantIds` and `uses` have the same length; every use count is > 0 and they add up to
     *   the number of receipts in the range;
     * - every grant is owned by the caller's department and was approved (it may since have
     *   been revoked or have expired: uses before that are still anchored);
     * - no grant's anchored uses would exceed its `maxUses`.
     */
    function anchorReceipts(
        bytes32 root,
        uint64 firstSeq,
        uint64 lastSeq,
        string calldata manifestCid,
        uint256[] calldata grantIds,
        uint32[] calldata uses
    ) external returns (uint256 batchIndex);

    // -------------------------------------------------------------- supervision

    /**
     * @notice Reminds the owner of overdue request `requestId` (催办).
     *
     * Requirements:
     * - the request exists;
     * - the caller is the broker or an admin account of the requesting department, which is active;
     * - the request is pending and block.timestamp > its deadline.
     */
    function remind(uint256 requestId) external;

    /**
     * @notice Escalates overdue request `requestId` to the consortium's supervisors (督办).
     *
     * Requirements:
     * - the request exists;
     * - the caller is the broker or an admin account of the requesting department, which is active;
     * - the request is pending and block.timestamp > its deadline;
     * - the registry has at least one supervisor.
     */
    function escalate(uint256 requestId) external;

    // ------------------------------------------------------------------ views

    /**
     * @notice How far ahead of the block time a request's deadline may be: a year (366 days).
     *
     * Requirements: none.
     */
    function deadlineHorizon() external pure returns (uint64);

    /**
     * @notice How far ahead of the block time a grant's expiry may be: ten years (3,653 days).
     *
     * Requirements: none.
     */
    function expiryHorizon() external pure returns (uint64);

    /**
     * @notice Longest purpose, legal basis, or denial or revocation reason, in bytes (8,192).
     *
     * Requirements: none.
     */
    function maxTextLength() external pure returns (uint256);

    /**
     * @notice Longest receipt manifest CID, in bytes (128).
     *
     * Requirements: none.
     */
    function maxCidLength() external pure returns (uint256);

    /**
     * @notice Most receipts one batch may anchor (100,000).
     *
     * Requirements: none.
     */
    function maxReceiptsPerBatch() external pure returns (uint64);

    /**
     * @notice The consortium registry this ledger reads.
     *
     * Requirements: none.
     */
    function registry() external view returns (IConsortiumRegistry);

    /**
     * @notice The record registry this ledger reads.
     *
     * Requirements: none.
     */
    function records() external view returns (IRecordRegistry);

    /**
     * @notice Number of requests made (the last id).
     *
     * Requirements: none.
     */
    function requestCount() external view returns (uint256);

    /**
     * @notice Request (or grant) `requestId`, with everything that happened to it (the
     * struct does not repeat the id).
     *
     * Requirements:
     * - the request exists.
     */
    function getRequest(uint256 requestId) external view returns (Request memory);

    /**
     * @notice Whether grant `grantId` is usable now and, if not, why: the first of unknown,
     * pending, denied, revoked, owner inactive, requester inactive, expired, quota used up.
     *
     * Requirements: none.
     */
    function grantStatus(uint256 grantId) external view returns (bool usable, GrantReason reason);

    /**
     * @notice Ids of every request for `recordId`, in order.
     *
     * Requirements: none.
     */
    function requestsForRecord(bytes32 recordId) external view returns (uint256[] memory);

    /**
     * @notice Whether request `requestId` is pending and past its deadline.
     *
     * Requirements: none.
     */
    function isOverdue(uint256 requestId) external view returns (bool);

    /**
     * @notice The last receipt sequence number `department` has anchored (0 if none): its
     * last receipt batch's `lastSeq`.
     *
     * Requirements: none.
     */
    function lastReceiptSeq(bytes32 department) external view returns (uint64);

    /**
     * @notice Number of receipt batches `department` has anchored.
     *
     * Requirements: none.
     */
    function receiptBatchCount(bytes32 department) external view returns (uint256);

    /**
     * @notice `department`'s receipt batch `index` (from 1).
     *
     * Requirements:
     * - 1 <= `index` <= `receiptBatchCount(department)`.
     */
    function getReceiptBatch(bytes32 department, uint256 index) external view returns (ReceiptBatch memory);
}
