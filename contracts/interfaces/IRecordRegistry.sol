// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortiumRegistry} from "./IConsortiumRegistry.sol";

/**
 * @title IRecordRegistry
 * @notice Anchors of departments' records (single and Merkle batches), their version
 * chains, and each department's catalog of the categories it holds.
 *
 * Records are anchored by an active department's broker account, always for that
 * broker's own department. Catalog entries are managed by the department's admins.
 * A record's category must be declared, and not retired, in its department's catalog.
 * CIDs are at most {maxCidLength} bytes and catalog descriptions at most
 * {maxDescriptionLength}, so every member's software can store what another wrote.
 */
interface IRecordRegistry {
    // ------------------------------------------------------------------ types

    /// @notice An anchored record, as stored under its id. `supersededBy` is zero until a
    /// newer version is anchored. The id is the key it is read with, and the block and
    /// transaction that anchored it are those of its {RecordAnchored} event: neither is stored.
    struct Record {
        bytes32 department;
        bytes32 contentHash; // sha256 of the plaintext
        string cid; // CID of the ciphertext
        bytes32 category;
        bytes32 subjectRef; // keyed hash of the subject id, or zero
        bytes32 previousRecordId; // the version this one supersedes, or zero
        bytes32 supersededBy; // the version that superseded this one, or zero
        address anchoredBy;
        uint64 anchoredAt;
    }

    /// @notice A Merkle batch of records, numbered per department from 1.
    struct RecordBatch {
        bytes32 merkleRoot;
        string manifestCid;
        // anchoredBy, anchoredAt and count share one storage slot
        address anchoredBy;
        uint64 anchoredAt;
        uint32 count;
    }

    /// @notice One record of a Merkle batch: the fields of its leaf other than the
    /// department (which is the batch's). See {recordLeafHash} for the exact encoding.
    struct BatchLeaf {
        bytes32 recordId;
        bytes32 contentHash; // sha256 of the plaintext
        string cid; // CID of the ciphertext
        bytes32 category;
        bytes32 subjectRef; // keyed hash of the subject id, or zero
        bytes32 previousRecordId; // the version this one supersedes, or zero
    }

    /// @notice How a catalog category is shared, as government data-sharing rules classify
    /// catalog items. A new category is `Conditional` (the zero value).
    enum SharingType {
        Conditional, // 0: an admin of the owning department decides each request
        Unconditional, // 1: the access ledger grants any active member's request itself
        None // 2: not shared: the access ledger refuses requests
    }

    /// @notice A catalog entry: a category of records a department holds.
    struct Category {
        bytes32 category;
        string description;
        bytes32 schemaHash;
        bool active; // false once retired
        uint64 declaredAt; // first declaration
        uint64 updatedAt; // last declaration, retirement or sharing change
        SharingType sharing;
        uint64 defaultTtl; // seconds a grant lasts when not decided otherwise (unconditional: always)
        uint32 defaultMaxUses; // uses a grant allows when not decided otherwise
    }

    // ----------------------------------------------------------------- errors

    /// @notice The consortium registry's address must not be zero.
    error RecordRegistryZeroRegistry();
    /// @notice `account` is not the broker account of an active department.
    error RecordRegistryNotActiveBroker(address account);
    /// @notice `account` is not an admin account of an active department.
    error RecordRegistryNotActiveAdmin(address account);
    /// @notice The record id must not be zero.
    error RecordRegistryInvalidRecordId();
    /// @notice The content hash must not be zero.
    error RecordRegistryInvalidContentHash(bytes32 recordId);
    /// @notice The CID must not be empty.
    error RecordRegistryEmptyCid();
    /// @notice The CID is `length` bytes long; at most `maxLength` are allowed.
    error RecordRegistryCidTooLong(uint256 length, uint256 maxLength);
    /// @notice A record with `recordId` is anchored already.
    error RecordRegistryRecordExists(bytes32 recordId);
    /// @notice No record has `recordId`.
    error RecordRegistryUnknownRecord(bytes32 recordId);
    /// @notice Record `recordId` belongs to `owner`, not to `department`.
    error RecordRegistryNotRecordOwner(bytes32 recordId, bytes32 owner, bytes32 department);
    /// @notice Record `recordId` was superseded already, by `supersededBy`.
    error RecordRegistryAlreadySuperseded(bytes32 recordId, bytes32 supersededBy);
    /// @notice `category` is not 1-32 characters of `[A-Za-z0-9._-]`, left-aligned and zero padded.
    error RecordRegistryInvalidCategory(bytes32 category);
    /// @notice `department` has not declared `category`.
    error RecordRegistryUnknownCategory(bytes32 department, bytes32 category);
    /// @notice `department` retired `category`.
    error RecordRegistryCategoryRetired(bytes32 department, bytes32 category);
    /// @notice The description of `category` is `length` bytes long; at most `maxLength` are allowed.
    error RecordRegistryDescriptionTooLong(bytes32 category, uint256 length, uint256 maxLength);
    /// @notice A batch's Merkle root must not be zero.
    error RecordRegistryEmptyMerkleRoot();
    /// @notice A batch must contain at least one record.
    error RecordRegistryEmptyBatch();
    /// @notice Department `department` has no batch `sequence`.
    error RecordRegistryUnknownBatch(bytes32 department, uint64 sequence);
    /// @notice Leaf `leafIndex` is beyond batch `sequence` of `department`, which holds `count` records.
    error RecordRegistryLeafIndexOutOfRange(bytes32 department, uint64 sequence, uint32 leafIndex, uint32 count);
    /// @notice The leaf and audit path given do not lead to the root of `department`'s batch
    /// `sequence` at `leafIndex` (a wrong field, index, path, or a path for another tree size).
    error RecordRegistryInvalidProof(bytes32 department, uint64 sequence, uint32 leafIndex);
    /// @notice Department `department` is not active, so its batched records cannot be materialised.
    error RecordRegistryDepartmentNotActive(bytes32 department);
    /// @notice An unconditional category needs a default grant lifetime (1 s up to
    /// {maxDefaultTtl}) and a default number of uses (at least 1); a category that is not
    /// shared takes neither; a conditional one may (both or none), within the same bounds.
    error RecordRegistryInvalidSharingDefaults(
        bytes32 category, SharingType sharing, uint64 defaultTtl, uint32 defaultMaxUses
    );

    // ----------------------------------------------------------------- events

    /// @notice Record `recordId` of `department` with `contentHash` was anchored by broker `anchoredBy`.
    event RecordAnchored(
        bytes32 indexed recordId,
        bytes32 indexed department,
        bytes32 indexed contentHash,
        string cid,
        bytes32 category,
        bytes32 subjectRef,
        bytes32 previousRecordId,
        address anchoredBy
    );
    /// @notice `previousRecordId` was superseded by `newRecordId` (same department).
    event RecordSuperseded(
        bytes32 indexed previousRecordId, bytes32 indexed newRecordId, bytes32 indexed department
    );
    /// @notice `department`'s batch number `sequence` with `merkleRoot` over `count` records was anchored.
    event RecordBatchAnchored(
        bytes32 indexed department,
        uint64 indexed sequence,
        bytes32 indexed merkleRoot,
        uint32 count,
        string manifestCid,
        address anchoredBy
    );
    /// @notice Record `recordId`, leaf `leafIndex` of `department`'s batch `sequence`, was
    /// materialised on chain by broker `materialisedBy` (right after its {RecordAnchored}).
    event RecordMaterialised(
        bytes32 indexed recordId,
        bytes32 indexed department,
        uint64 indexed sequence,
        uint32 leafIndex,
        address materialisedBy
    );
    /// @notice `department` declared (or updated, or re-activated) `category`, by admin `by`.
    event CategoryDeclared(
        bytes32 indexed department,
        bytes32 indexed category,
        address indexed by,
        string description,
        bytes32 schemaHash
    );
    /// @notice `department` retired `category`, by admin `by`.
    event CategoryRetired(bytes32 indexed department, bytes32 indexed category, address indexed by);
    /// @notice `department` set how `category` is shared, by admin `by` (the defaults are
    /// what an unconditional grant gets).
    event CategorySharingChanged(
        bytes32 indexed department,
        bytes32 indexed category,
        address indexed by,
        SharingType sharing,
        uint64 defaultTtl,
        uint32 defaultMaxUses
    );

    // -------------------------------------------------------------- anchoring

    /**
     * @notice Anchors record `recordId` for the caller's department; with a non-zero
     * `previousRecordId` it becomes the next version of that record.
     *
     * Requirements:
     * - the caller is the broker account of an active department;
     * - `recordId` and `contentHash` are not zero, `cid` is not empty and at most
     *   {maxCidLength} bytes long;
     * - no record with `recordId` exists;
     * - if `previousRecordId` is not zero: it exists, belongs to the caller's department
     *   and has not been superseded yet;
     * - `category` is declared and not retired in the department's catalog.
     */
    function anchor(
        bytes32 recordId,
        bytes32 contentHash,
        string calldata cid,
        bytes32 category,
        bytes32 subjectRef,
        bytes32 previousRecordId
    ) external;

    /**
     * @notice Anchors the Merkle root of a batch of `count` records of the caller's
     * department, whose leaves are listed in the manifest at `manifestCid`: the RFC 6962
     * root (SHA-256) over their {recordLeafHash}es, in manifest order. The batch's records
     * are committed to at once and written on chain one by one with {materialise},
     * each when it is first needed (a request checks the record on chain).
     * @return sequence the department's batch number (1, 2, ...)
     *
     * Requirements:
     * - the caller is the broker account of an active department;
     * - `merkleRoot` is not zero, `count` > 0, `manifestCid` is not empty and at most
     *   {maxCidLength} bytes long.
     */
    function anchorBatch(bytes32 merkleRoot, uint32 count, string calldata manifestCid)
        external
        returns (uint64 sequence);

    /**
     * @notice Writes record `leaf` of `department`'s batch `sequence` on chain, exactly as
     * {anchor} would have (same storage, {RecordAnchored} and {RecordSuperseded} events,
     * same version rules, checked now), after checking that `proof`, its RFC 6962 audit
     * path, leads from the leaf's hash ({recordLeafHash}) at `leafIndex` to the batch's
     * root in a tree of the batch's `count` leaves. The record's `anchoredBy` and
     * `anchoredAt` are the batch's (who committed to it, and when); {RecordMaterialised}
     * names the caller. Materialising a record that is on chain already reverts with
     * {RecordRegistryRecordExists}: a record is written once.
     *
     * Requirements:
     * - the caller is the broker account of an active department (any department: a
     *   requester materialises the record it asks for);
     * - `department` is active and has a batch `sequence`, and `leafIndex` < its count;
     * - `proof` is the audit path of the leaf at `leafIndex` to the batch's root;
     * - the leaf's `recordId` and `contentHash` are not zero, its `cid` is not empty and at
     *   most {maxCidLength} bytes long, and no record with its id exists;
     * - if its `previousRecordId` is not zero: that record is on chain, belongs to
     *   `department` and has not been superseded yet (materialise it first);
     * - its `category` is declared in `department`'s catalog (it may have been retired
     *   since the batch: the batch committed to the record before).
     */
    function materialise(
        bytes32 department,
        uint64 sequence,
        uint32 leafIndex,
        BatchLeaf calldata leaf,
        bytes32[] calldata proof
    ) external;

    // ---------------------------------------------------------------- catalog

    /**
     * @notice Declares that the caller's department holds records of `category`; declaring
     * it again updates the description and schema hash and re-activates a retired entry.
     *
     * Requirements:
     * - the caller is an admin account of an active department;
     * - `category` is 1-32 characters of `[A-Za-z0-9._-]`, left-aligned, zero padded;
     * - `description` is at most {maxDescriptionLength} bytes long.
     */
    function declareCategory(bytes32 category, string calldata description, bytes32 schemaHash) external;

    /**
     * @notice Retires `category` from the caller's department's catalog: no new records
     * of it can be anchored (existing ones stay).
     *
     * Requirements:
     * - the caller is an admin account of an active department;
     * - the department declared `category` and has not retired it.
     */
    function retireCategory(bytes32 category) external;

    /**
     * @notice Sets how the caller's department shares `category`: `Conditional` (an admin
     * decides each request), `Unconditional` (the access ledger grants an active member's
     * request at once, for `defaultTtl` seconds and `defaultMaxUses` uses) or `None` (the
     * access ledger refuses requests). Applies to requests made from the next block on;
     * grants already given keep their terms. Emits {CategorySharingChanged}.
     *
     * Requirements:
     * - the caller is an admin account of an active department;
     * - the department declared `category` and has not retired it;
     * - `Unconditional`: 0 < `defaultTtl` <= {maxDefaultTtl} and `defaultMaxUses` > 0;
     *   `None`: both zero; `Conditional`: both zero, or both within those bounds.
     */
    function setSharing(bytes32 category, SharingType sharing, uint64 defaultTtl, uint32 defaultMaxUses)
        external;

    // ------------------------------------------------------------------ views

    /**
     * @notice Longest record or batch manifest CID, in bytes (128).
     *
     * Requirements: none.
     */
    function maxCidLength() external pure returns (uint256);

    /**
     * @notice Longest catalog description, in bytes (8,192).
     *
     * Requirements: none.
     */
    function maxDescriptionLength() external pure returns (uint256);

    /**
     * @notice Longest default grant lifetime a category can declare, in seconds (3,653 days,
     * the access ledger's expiry horizon).
     *
     * Requirements: none.
     */
    function maxDefaultTtl() external pure returns (uint64);

    /**
     * @notice The registry this contract reads departments from.
     *
     * Requirements: none.
     */
    function registry() external view returns (IConsortiumRegistry);

    /**
     * @notice Whether `recordId` is anchored.
     *
     * Requirements: none.
     */
    function recordExists(bytes32 recordId) external view returns (bool);

    /**
     * @notice The anchored record `recordId` (the struct does not repeat the id; the block
     * that anchored it is its {RecordAnchored} event's).
     *
     * Requirements:
     * - the record exists.
     */
    function getRecord(bytes32 recordId) external view returns (Record memory);

    /**
     * @notice The department that owns `recordId` (zero if it is not anchored).
     *
     * Requirements: none.
     */
    function ownerOf(bytes32 recordId) external view returns (bytes32 department);

    /**
     * @notice Ids of every record anchored with `contentHash`, in anchoring order.
     *
     * Requirements: none.
     */
    function recordsByHash(bytes32 contentHash) external view returns (bytes32[] memory);

    /**
     * @notice Total number of records on chain: anchored individually or materialised
     * from a batch (records of a batch that are not materialised are not counted).
     *
     * Requirements: none.
     */
    function recordCount() external view returns (uint256);

    /**
     * @notice Number of batches `department` has anchored (its last sequence number).
     *
     * Requirements: none.
     */
    function batchCount(bytes32 department) external view returns (uint64);

    /**
     * @notice `department`'s batch `sequence`.
     *
     * Requirements:
     * - 1 <= `sequence` <= `batchCount(department)`.
     */
    function getBatch(bytes32 department, uint64 sequence) external view returns (RecordBatch memory);

    /**
     * @notice The Merkle root of `department`'s batch `sequence`.
     *
     * Requirements:
     * - 1 <= `sequence` <= `batchCount(department)`.
     */
    function batchRoot(bytes32 department, uint64 sequence) external view returns (bytes32);

    /**
     * @notice The RFC 6962 leaf hash of record `leaf` of `department`:
     * `sha256(0x00 ‖ abi.encode(LEAF_TAG, recordId, department, contentHash, cid, category,
     * subjectRef, previousRecordId))`, with `LEAF_TAG` the ASCII "govshare.record-leaf.v1"
     * left-aligned in a bytes32 (docs/contracts.md gives the bytes).
     *
     * Requirements: none.
     */
    function recordLeafHash(bytes32 department, BatchLeaf calldata leaf) external pure returns (bytes32);

    /**
     * @notice Whether `proof` shows that `leaf` is leaf `leafIndex` of `department`'s batch
     * `sequence` (the check {materialise} makes; false for an unknown batch or an index
     * beyond it). Nothing else about the leaf (versions, category, bounds) is checked.
     *
     * Requirements: none.
     */
    function verifyBatchedRecord(
        bytes32 department,
        uint64 sequence,
        uint32 leafIndex,
        BatchLeaf calldata leaf,
        bytes32[] calldata proof
    ) external view returns (bool);

    /**
     * @notice Every catalog entry of `department`, retired ones included, in declaration order.
     *
     * Requirements: none.
     */
    function categories(bytes32 department) external view returns (Category[] memory);

    /**
     * @notice `department`'s catalog entry for `category`.
     *
     * Requirements:
     * - `department` declared `category` (it may be retired).
     */
    function getCategory(bytes32 department, bytes32 category) external view returns (Category memory);

    /**
     * @notice Who owns record `recordId` (zero if it is not on chain), its category, and how
     * the owner shares that category: what the access ledger reads for a request by id.
     *
     * Requirements: none.
     */
    function recordSharing(bytes32 recordId)
        external
        view
        returns (bytes32 department, bytes32 category, SharingType sharing, uint64 defaultTtl, uint32 defaultMaxUses);

    /**
     * @notice How `department` shares `category`, without reverting: whether it is declared
     * and active, its sharing type and its grant defaults (what the access ledger reads
     * for every request).
     *
     * Requirements: none.
     */
    function categorySharing(bytes32 department, bytes32 category)
        external
        view
        returns (bool declared, bool active, SharingType sharing, uint64 defaultTtl, uint32 defaultMaxUses);

    /**
     * @notice Whether `category` is a well-formed category label (1-32 of `[A-Za-z0-9._-]`,
     * left-aligned, zero padded).
     *
     * Requirements: none.
     */
    function isValidCategory(bytes32 category) external pure returns (bool);
}
