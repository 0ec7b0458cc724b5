// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";

/**
 * @title RecordRegistry
 * @notice Where each department's records are anchored: content hash, ciphertext CID,
 * category, subject reference and version links; Merkle batches; the catalog.
 * See {IRecordRegistry} and docs/contracts.md.
 */
contract RecordRegistry is IRecordRegistry {
    // Bounds on what a member writes (see {IRecordRegistry}): a broker keeps CIDs in
    // columns of 128 characters.
    uint256 private constant _MAX_CID_LENGTH = 128;
    uint256 private constant _MAX_DESCRIPTION_LENGTH = 8192;
    /// The access ledger's expiry horizon: an unconditional grant never outlives what an
    /// admin could grant.
    uint64 private constant _MAX_DEFAULT_TTL = 3653 days;
    /// Domain tag opening every batch leaf (ASCII, left-aligned, zero padded): a leaf of
    /// a record batch can never be read as any other govshare structure.
    bytes32 private constant _LEAF_TAG = "govshare.record-leaf.v1";

    IConsortiumRegistry private immutable _registry;

    mapping(bytes32 recordId => Record) private _records;
    mapping(bytes32 contentHash => bytes32[]) private _byHash;
    uint256 private _recordCount;

    mapping(bytes32 department => RecordBatch[]) private _batches;

    mapping(bytes32 department => Category[]) private _catalog;
    /// Position + 1 of a category in `_catalog[department]` (0: not declared).
    mapping(bytes32 department => mapping(bytes32 category => uint256)) private _catalogIndex;

    /**
     * @notice Binds this registry of records to the consortium registry `registry_`.
     *
     * Requirements:
     * - `registry_` is not the zero address.
     */
    constructor(IConsortiumRegistry registry_) {
        if (address(registry_) == address(0)) revert RecordRegistryZeroRegistry();
        _registry = registry_;
    }

    // -------------------------------------------------------------- anchoring

    /// @inheritdoc IRecordRegistry
    function anchor(
        bytes32 recordId,
        bytes32 contentHash,
        string calldata cid,
        bytes32 category,
        bytes32 subjectRef,
        bytes32 previousRecordId
    ) external {
        bytes32 dept = _requireActiveBroker();
        _checkNewRecord(dept, recordId, contentHash, cid, previousRecordId);
        _requireActiveCategory(dept, category);
        // Every check passed: only now does anything change.
        _storeRecord(dept, recordId, contentHash, cid, category, subjectRef, previousRecordId);
        _finishRecord(recordId, contentHash, previousRecordId, msg.sender, uint64(block.timestamp));
        emit RecordAnchored(recordId, dept, contentHash, cid, category, subjectRef, previousRecordId, msg.sender);
        if (previousRecordId != bytes32(0)) emit RecordSuperseded(previousRecordId, recordId, dept);
    }

    /// @inheritdoc IRecordRegistry
    function anchorBatch(bytes32 merkleRoot, uint32 count, string calldata manifestCid)
        external
        returns (uint64 sequence)
    {
        bytes32 dept = _requireActiveBroker();
        if (merkleRoot == bytes32(0)) revert RecordRegistryEmptyMerkleRoot();
        if (count == 0) revert RecordRegistryEmptyBatch();
        _checkCid(manifestCid);
        _batches[dept].push(
            RecordBatch({
                merkleRoot: merkleRoot,
                manifestCid: manifestCid,
                anchoredBy: msg.sender,
                anchoredAt: uint64(block.timestamp),
                count: count
            })
        );
        sequence = uint64(_batches[dept].length);
        emit RecordBatchAnchored(dept, sequence, merkleRoot, count, manifestCid, msg.sender);
    }

    /// @inheritdoc IRecordRegistry
    function materialise(
        bytes32 department,
        uint64 sequence,
        uint32 leafIndex,
        BatchLeaf calldata leaf,
        bytes32[] calldata proof
    ) external {
        _requireActiveBroker();
        if (_registry.departmentStatus(department) != IConsortiumRegistry.DepartmentStatus.Active) {
            revert RecordRegistryDepartmentNotActive(department);
        }
        RecordBatch storage batch = _batch(department, sequence);
        uint32 count = batch.count;
        if (leafIndex >= count) revert RecordRegistryLeafIndexOutOfRange(department, sequence, leafIndex, count);
        if (!_verify(leafIndex, count, _leafHash(department, leaf), proof, batch.merkleRoot)) {
            revert RecordRegistryInvalidProof(department, sequence, leafIndex);
        }
        _checkNewRecord(department, leaf.recordId, leaf.contentHash, leaf.cid, leaf.previousRecordId);
        // Declared, retired or not: the batch committed to the record before any later retirement.
        if (_catalogIndex[department][leaf.category] == 0) {
            revert RecordRegistryUnknownCategory(department, leaf.category);
        }

        // Every check passed: only now does anything change.
        _storeRecord(
            department, leaf.recordId, leaf.contentHash, leaf.cid, leaf.category, leaf.subjectRef, leaf.previousRecordId
        );
        address anchoredBy = batch.anchoredBy;
        _finishRecord(leaf.recordId, leaf.contentHash, leaf.previousRecordId, anchoredBy, batch.anchoredAt);
        emit RecordAnchored(
            leaf.recordId,
            department,
            leaf.contentHash,
            leaf.cid,
            leaf.category,
            leaf.subjectRef,
            leaf.previousRecordId,
            anchoredBy
        );
        if (leaf.previousRecordId != bytes32(0)) {
            emit RecordSuperseded(leaf.previousRecordId, leaf.recordId, department);
        }
        emit RecordMaterialised(leaf.recordId, department, sequence, leafIndex, msg.sender);
    }

    // ---------------------------------------------------------------- catalog

    /// @inheritdoc IRecordRegistry
    function declareCategory(bytes32 category, string calldata description, bytes32 schemaHash) external {
        bytes32 dept = _requireActiveAdmin();
        if (!isValidCategory(category)) revert RecordRegistryInvalidCategory(category);
        if (bytes(description).length > _MAX_DESCRIPTION_LENGTH) {
            revert RecordRegistryDescriptionTooLong(category, bytes(description).length, _MAX_DESCRIPTION_LENGTH);
        }
        uint256 index = _catalogIndex[dept][category];
        if (index == 0) {
            _catalog[dept].push(
                Category({
                    category: category,
                    description: description,
                    schemaHash: schemaHash,
                    active: true,
                    declaredAt: uint64(block.timestamp),
                    updatedAt: uint64(block.timestamp),
                    sharing: SharingType.Conditional,
                    defaultTtl: 0,
                    defaultMaxUses: 0
                })
            );
            _catalogIndex[dept][category] = _catalog[dept].length;
        } else {
            Category storage c = _catalog[dept][index - 1];
            c.description = description;
            c.schemaHash = schemaHash;
            c.active = true;
            c.updatedAt = uint64(block.timestamp);
        }
        emit CategoryDeclared(dept, category, msg.sender, description, schemaHash);
    }

    /// @inheritdoc IRecordRegistry
    function retireCategory(bytes32 category) external {
        bytes32 dept = _requireActiveAdmin();
        Category storage c = _activeCategory(dept, category);
        c.active = false;
        c.updatedAt = uint64(block.timestamp);
        emit CategoryRetired(dept, category, msg.sender);
    }

    /// @inheritdoc IRecordRegistry
    function setSharing(bytes32 category, SharingType sharing, uint64 defaultTtl, uint32 defaultMaxUses)
        external
    {
        bytes32 dept = _requireActiveAdmin();
        Category storage c = _activeCategory(dept, category);
        if (!_validDefaults(sharing, defaultTtl, defaultMaxUses)) {
            revert RecordRegistryInvalidSharingDefaults(category, sharing, defaultTtl, defaultMaxUses);
        }
        c.sharing = sharing;
        c.defaultTtl = defaultTtl;
        c.defaultMaxUses = defaultMaxUses;
        c.updatedAt = uint64(block.timestamp);
        emit CategorySharingChanged(dept, category, msg.sender, sharing, defaultTtl, defaultMaxUses);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IRecordRegistry
    function maxCidLength() external pure returns (uint256) {
        return _MAX_CID_LENGTH;
    }

    /// @inheritdoc IRecordRegistry
    function maxDescriptionLength() external pure returns (uint256) {
        return _MAX_DESCRIPTION_LENGTH;
    }

    /// @inheritdoc IRecordRegistry
    function maxDefaultTtl() external pure returns (uint64) {
        return _MAX_DEFAULT_TTL;
    }

    /// @inheritdoc IRecordRegistry
    function registry() external view returns (IConsortiumRegistry) {
        return _registry;
    }

    /// @inheritdoc IRecordRegistry
    function recordExists(bytes32 recordId) external view returns (bool) {
        return _records[recordId].department != bytes32(0);
    }

    /// @inheritdoc IRecordRegistry
    function getRecord(bytes32 recordId) external view returns (Record memory) {
        Record storage r = _records[recordId];
        if (r.department == bytes32(0)) revert RecordRegistryUnknownRecord(recordId);
        return r;
    }

    /// @inheritdoc IRecordRegistry
    function ownerOf(bytes32 recordId) external view returns (bytes32 department) {
        return _records[recordId].department;
    }

    /// @inheritdoc IRecordRegistry
    function recordsByHash(bytes32 contentHash) external view returns (bytes32[] memory) {
        return _byHash[contentHash];
    }

    /// @inheritdoc IRecordRegistry
    function recordCount() external view returns (uint256) {
        return _recordCount;
    }

    /// @inheritdoc IRecordRegistry
    function batchCount(bytes32 department) external view returns (uint64) {
        return uint64(_batches[department].length);
    }

    /// @inheritdoc IRecordRegistry
    function getBatch(bytes32 department, uint64 sequence) external view returns (RecordBatch memory) {
        return _batch(department, sequence);
    }

    /// @inheritdoc IRecordRegistry
    function batchRoot(bytes32 department, uint64 sequence) external view returns (bytes32) {
        return _batch(department, sequence).merkleRoot;
    }

    /// @inheritdoc IRecordRegistry
    function recordLeafHash(bytes32 department, BatchLeaf calldata leaf) external pure returns (bytes32) {
        return _leafHash(department, leaf);
    }

    /// @inheritdoc IRecordRegistry
    function verifyBatchedRecord(
        bytes32 department,
        uint64 sequence,
        uint32 leafIndex,
        BatchLeaf calldata leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        if (sequence == 0 || sequence > _batches[department].length) return false;
        RecordBatch storage batch = _batches[department][sequence - 1];
        uint32 count = batch.count;
        if (leafIndex >= count) return false;
        return _verify(leafIndex, count, _leafHash(department, leaf), proof, batch.merkleRoot);
    }

    /// @inheritdoc IRecordRegistry
    function categories(bytes32 department) external view returns (Category[] memory) {
        return _catalog[department];
    }

    /// @inheritdoc IRecordRegistry
    function getCategory(bytes32 department, bytes32 category) external view returns (Category memory) {
        uint256 index = _catalogIndex[department][category];
        if (index == 0) revert RecordRegistryUnknownCategory(department, category);
        return _catalog[department][index - 1];
    }

    /// @inheritdoc IRecordRegistry
    function recordSharing(bytes32 recordId)
        external
        view
        returns (bytes32 department, bytes32 category, SharingType sharing, uint64 defaultTtl, uint32 defaultMaxUses)
    {
        Record storage r = _records[recordId];
        department = r.department;
        if (department == bytes32(0)) return (department, bytes32(0), SharingType.Conditional, 0, 0);
        category = r.category;
        uint256 index = _catalogIndex[department][category];
        if (index == 0) return (department, category, SharingType.Conditional, 0, 0);
        Category storage c = _catalog[department][index - 1];
        return (department, category, c.sharing, c.defaultTtl, c.defaultMaxUses);
    }

    /// @inheritdoc IRecordRegistry
    function categorySharing(bytes32 department, bytes32 category)
        external
        view
        returns (bool declared, bool active, SharingType sharing, uint64 defaultTtl, uint32 defaultMaxUses)
    {
        uint256 index = _catalogIndex[department][category];
        if (index == 0) return (false, false, SharingType.Conditional, 0, 0);
        Category storage c = _catalog[department][index - 1];
        return (true, c.active, c.sharing, c.defaultTtl, c.defaultMaxUses);
    }

    /// @inheritdoc IRecordRegistry
    function isValidCategory(bytes32 category) public pure returns (bool) {
        uint256 len = 0;
        while (len < 32 && category[len] != 0) {
            bytes1 c = category[len];
            bool ok = (c >= "A" && c <= "Z") || (c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "."
                || c == "_" || c == "-";
            if (!ok) return false;
            ++len;
        }
        if (len == 0) return false;
        // Zero padding: every byte after the first zero must be zero.
        return len == 32 || uint256(category) << (8 * len) == 0;
    }

    // --------------------------------------------------------------- internals

    /// @dev The caller's department, which must be active, with the caller as its broker.
    function _requireActiveBroker() private view returns (bytes32 dept) {
        IConsortiumRegistry.AccountRole role;
        (dept, role) = _registry.departmentOf(msg.sender);
        if (role != IConsortiumRegistry.AccountRole.Broker || !_registry.isActiveBroker(dept, msg.sender)) {
            revert RecordRegistryNotActiveBroker(msg.sender);
        }
    }

    /// @dev The caller's department, which must be active, with the caller as an admin.
    function _requireActiveAdmin() private view returns (bytes32 dept) {
        IConsortiumRegistry.AccountRole role;
        (dept, role) = _registry.departmentOf(msg.sender);
        if (role != IConsortiumRegistry.AccountRole.Admin || !_registry.isActiveAdmin(dept, msg.sender)) {
            revert RecordRegistryNotActiveAdmin(msg.sender);
        }
    }

    /// @dev Checks a new record of `dept` against the rules every record meets, however it
    /// comes on chain: id and hash set, CID bounded, id new, and the previous version (if
    /// any) on chain, of `dept`, and not superseded yet.
    function _checkNewRecord(
        bytes32 dept,
        bytes32 recordId,
        bytes32 contentHash,
        string calldata cid,
        bytes32 previousRecordId
    ) private view {
        if (recordId == bytes32(0)) revert RecordRegistryInvalidRecordId();
        if (contentHash == bytes32(0)) revert RecordRegistryInvalidContentHash(recordId);
        _checkCid(cid);
        if (_records[recordId].department != bytes32(0)) revert RecordRegistryRecordExists(recordId);
        if (previousRecordId != bytes32(0)) {
            Record storage prev = _records[previousRecordId];
            bytes32 prevDept = prev.department;
            if (prevDept == bytes32(0)) revert RecordRegistryUnknownRecord(previousRecordId);
            if (prevDept != dept) revert RecordRegistryNotRecordOwner(previousRecordId, prevDept, dept);
            if (prev.supersededBy != bytes32(0)) {
                revert RecordRegistryAlreadySuperseded(previousRecordId, prev.supersededBy);
            }
        }
    }

    /// @dev Writes the record's own fields (after every check).
    function _storeRecord(
        bytes32 dept,
        bytes32 recordId,
        bytes32 contentHash,
        string calldata cid,
        bytes32 category,
        bytes32 subjectRef,
        bytes32 previousRecordId
    ) private {
        Record storage r = _records[recordId];
        r.department = dept;
        r.contentHash = contentHash;
        r.cid = cid;
        r.category = category;
        r.subjectRef = subjectRef;
        r.previousRecordId = previousRecordId;
    }

    /// @dev Writes who anchored the record and when, links the previous version to it
    /// and indexes it (after every check).
    function _finishRecord(
        bytes32 recordId,
        bytes32 contentHash,
        bytes32 previousRecordId,
        address anchoredBy,
        uint64 anchoredAt
    ) private {
        Record storage r = _records[recordId];
        r.anchoredBy = anchoredBy;
        r.anchoredAt = anchoredAt;
        if (previousRecordId != bytes32(0)) _records[previousRecordId].supersededBy = recordId;
        _byHash[contentHash].push(recordId);
        ++_recordCount;
    }

    /// @dev `department`'s batch `sequence`, which must exist.
    function _batch(bytes32 department, uint64 sequence) private view returns (RecordBatch storage) {
        if (sequence == 0 || sequence > _batches[department].length) {
            revert RecordRegistryUnknownBatch(department, sequence);
        }
        return _batches[department][sequence - 1];
    }

    /// @dev The RFC 6962 leaf hash of `leaf` of `department` (see {recordLeafHash}).
    function _leafHash(bytes32 department, BatchLeaf calldata leaf) private pure returns (bytes32) {
        return sha256(
            bytes.concat(
                bytes1(0x00),
                abi.encode(
                    _LEAF_TAG,
                    leaf.recordId,
                    department,
                    leaf.contentHash,
                    leaf.cid,
                    leaf.category,
                    leaf.subjectRef,
                    leaf.previousRecordId
                )
            )
        );
    }

    /// @dev Whether `proof` leads from `leafHash` at `index` to `root` in an RFC 6962 tree of
    /// `size` leaves (index < size checked by the caller). As transparency-dev/merkle's
    /// verifier: the path's lower part hashes by the index's bits, its upper part runs up
    /// the tree's right border; its length must be exactly what the position needs.
    function _verify(uint256 index, uint256 size, bytes32 leafHash, bytes32[] calldata proof, bytes32 root)
        private
        pure
        returns (bool)
    {
        uint256 inner = _bitLength(index ^ (size - 1));
        uint256 border = _popCount(index >> inner);
        if (proof.length != inner + border) return false;
        bytes32 h = leafHash;
        for (uint256 i = 0; i < inner; ++i) {
            h = ((index >> i) & 1) == 0
                ? sha256(abi.encodePacked(bytes1(0x01), h, proof[i]))
                : sha256(abi.encodePacked(bytes1(0x01), proof[i], h));
        }
        for (uint256 i = inner; i < proof.length; ++i) {
            h = sha256(abi.encodePacked(bytes1(0x01), proof[i], h));
        }
        return h == root;
    }

    /// @dev The number of bits needed to write `x` (0 for 0).
    function _bitLength(uint256 x) private pure returns (uint256 n) {
        while (x != 0) {
            ++n;
            x >>= 1;
        }
    }

    /// @dev The number of one bits in `x`.
    function _popCount(uint256 x) private pure returns (uint256 n) {
        while (x != 0) {
            n += x & 1;
            x >>= 1;
        }
    }

    /// @dev Whether a category shared as `sharing` may declare these grant defaults.
    function _validDefaults(SharingType sharing, uint64 ttl, uint32 uses) private pure returns (bool) {
        bool none = ttl == 0 && uses == 0;
        bool bounded = ttl != 0 && ttl <= _MAX_DEFAULT_TTL && uses != 0;
        if (sharing == SharingType.Unconditional) return bounded;
        if (sharing == SharingType.None) return none;
        return none || bounded;
    }

    /// @dev Reverts unless `cid` is present and not too long.
    function _checkCid(string calldata cid) private pure {
        uint256 length = bytes(cid).length;
        if (length == 0) revert RecordRegistryEmptyCid();
        if (length > _MAX_CID_LENGTH) revert RecordRegistryCidTooLong(length, _MAX_CID_LENGTH);
    }

    /// @dev Reverts unless `dept` declared `category` and has not retired it.
    function _requireActiveCategory(bytes32 dept, bytes32 category) private view {
        _activeCategory(dept, category);
    }

    /// @dev `dept`'s active catalog entry for `category`.
    function _activeCategory(bytes32 dept, bytes32 category) private view returns (Category storage c) {
        uint256 index = _catalogIndex[dept][category];
        if (index == 0) revert RecordRegistryUnknownCategory(dept, category);
        c = _catalog[dept][index - 1];
        if (!c.active) revert RecordRegistryCategoryRetired(dept, category);
    }
}
