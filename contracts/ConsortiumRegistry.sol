// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";

/**
 * @title ConsortiumRegistry
 * @notice Who is a member of the consortium, with which accounts and keys, and the
 * threshold governance that changes it. See {IConsortiumRegistry} and docs/contracts.md.
 *
 * Approvals only count while the approving department is active: a proposal executes when
 * the departments that approved it *and are active now* reach the threshold. When a
 * suspension or removal leaves fewer active departments than the threshold, the threshold
 * is clamped down to the number of active departments (with a {ThresholdChanged} event),
 * so governance can never lock itself out by shrinking.
 */
contract ConsortiumRegistry is IConsortiumRegistry {
    using EnumerableSet for EnumerableSet.AddressSet;
    using EnumerableSet for EnumerableSet.Bytes32Set;

    struct DepartmentData {
        string name;
        address broker;
        EnumerableSet.AddressSet admins;
        bytes encryptionKey;
        string endpoint;
        DepartmentStatus status;
        uint64 joinedAt;
        uint64 updatedAt;
    }

    struct Binding {
        bytes32 code;
        AccountRole role;
    }

    /// A proposal as stored; {getProposal} adds what is derived: its id (the key), its
    /// creation time (`expiresAt` - the immutable lifetime), its approval count (the length
    /// of its approval list) and the Expired status.
    struct ProposalData {
        // proposer, kind, status and expiresAt share one storage slot: creating a proposal
        // and checking that it is open touch one slot
        address proposer;
        ProposalKind kind;
        ProposalStatus status;
        uint64 expiresAt;
        // targetAccount and executedAt share one storage slot
        address targetAccount;
        uint64 executedAt;
        bytes32 proposerDepartment;
        bytes32 targetDepartment;
        uint256 newThreshold;
    }

    // Bounds on what a department registers (see {IConsortiumRegistry}): every member's
    // software must be able to hold it, and `activeAccounts` must stay cheap to read.
    uint256 private constant _MAX_NAME_LENGTH = 256;
    uint256 private constant _MAX_ENDPOINT_LENGTH = 2048;
    uint256 private constant _MAX_ENCRYPTION_KEY_LENGTH = 2048;
    uint256 private constant _MAX_ADMINS = 32;
    // A proposal's expiry must stay far from uint64's end.
    uint64 private constant _MAX_PROPOSAL_LIFETIME = 365 days;

    uint64 private immutable _proposalLifetime;

    mapping(bytes32 code => DepartmentData) private _departments;
    bytes32[] private _allCodes;
    EnumerableSet.Bytes32Set private _active;

    /// Current role of an account; cleared when the account is rotated out.
    mapping(address account => Binding) private _bindings;
    /// The department an account was ever bound to; never cleared, so accounts are not reused.
    mapping(address account => bytes32 code) private _boundTo;

    EnumerableSet.AddressSet private _supervisors;
    uint256 private _threshold;

    uint256 private _proposalCount;
    mapping(uint256 id => ProposalData) private _proposals;
    mapping(uint256 id => DepartmentInit) private _proposedDepartments;
    mapping(uint256 id => bytes32[]) private _approvals;
    mapping(uint256 id => mapping(bytes32 code => bool)) private _approved;

    /**
     * @notice Registers the founding departments, the threshold, the proposal lifetime and the
     * initial supervisors.
     *
     * Requirements:
     * - at least one founder, each valid as for {proposeAddDepartment}, codes and accounts distinct;
     * - 1 <= `threshold_` <= number of founders;
     * - 0 < `proposalLifetime_` <= {maxProposalLifetime};
     * - supervisors are non-zero, distinct and not department accounts.
     */
    constructor(
        DepartmentInit[] memory founders,
        uint256 threshold_,
        uint64 proposalLifetime_,
        address[] memory supervisors_
    ) {
        if (founders.length == 0) revert ConsortiumRegistryNoFounders();
        if (proposalLifetime_ == 0 || proposalLifetime_ > _MAX_PROPOSAL_LIFETIME) {
            revert ConsortiumRegistryInvalidLifetime(proposalLifetime_);
        }
        if (threshold_ == 0 || threshold_ > founders.length) {
            revert ConsortiumRegistryInvalidThreshold(threshold_, founders.length);
        }
        _proposalLifetime = proposalLifetime_;
        // Each supervisor and founder is checked against those added before it, so these
        // checks cannot all come first.
        for (uint256 i = 0; i < supervisors_.length; ++i) {
            _addSupervisor(supervisors_[i], 0);
        }
        for (uint256 i = 0; i < founders.length; ++i) {
            _addDepartment(founders[i], 0);
        }
        _threshold = threshold_;
        emit ThresholdChanged(0, threshold_, 0);
    }

    // -------------------------------------------------------------- governance

    /// @inheritdoc IConsortiumRegistry
    function proposeAddDepartment(DepartmentInit calldata department) external returns (uint256 proposalId) {
        bytes32 proposerCode = _requireActiveAdmin();
        _validateNewDepartment(department);
        proposalId = _newProposal(proposerCode, ProposalKind.AddDepartment, department.code, address(0), 0);
        _proposedDepartments[proposalId] = department;
        _recordApproval(proposalId, proposerCode);
    }

    /// @inheritdoc IConsortiumRegistry
    function proposeSuspendDepartment(bytes32 code) external returns (uint256 proposalId) {
        bytes32 proposerCode = _requireActiveAdmin();
        _validateSuspend(code);
        proposalId = _newProposal(proposerCode, ProposalKind.SuspendDepartment, code, address(0), 0);
        _recordApproval(proposalId, proposerCode);
    }

    /// @inheritdoc IConsortiumRegistry
    function proposeRemoveDepartment(bytes32 code) external returns (uint256 proposalId) {
        bytes32 proposerCode = _requireActiveAdmin();
        _validateRemove(code);
        proposalId = _newProposal(proposerCode, ProposalKind.RemoveDepartment, code, address(0), 0);
        _recordApproval(proposalId, proposerCode);
    }

    /// @inheritdoc IConsortiumRegistry
    function proposeReactivateDepartment(bytes32 code) external returns (uint256 proposalId) {
        bytes32 proposerCode = _requireActiveAdmin();
        _validateReactivate(code);
        proposalId = _newProposal(proposerCode, ProposalKind.ReactivateDepartment, code, address(0), 0);
        _recordApproval(proposalId, proposerCode);
    }

    /// @inheritdoc IConsortiumRegistry
    function proposeThreshold(uint256 newThreshold) external returns (uint256 proposalId) {
        bytes32 proposerCode = _requireActiveAdmin();
        _validateThreshold(newThreshold);
        proposalId = _newProposal(proposerCode, ProposalKind.ChangeThreshold, bytes32(0), address(0), newThreshold);
        _recordApproval(proposalId, proposerCode);
    }

    /// @inheritdoc IConsortiumRegistry
    function proposeAddSupervisor(address account) external returns (uint256 proposalId) {
        bytes32 proposerCode = _requireActiveAdmin();
        _validateNewSupervisor(account);
        proposalId = _newProposal(proposerCode, ProposalKind.AddSupervisor, bytes32(0), account, 0);
        _recordApproval(proposalId, proposerCode);
    }

    /// @inheritdoc IConsortiumRegistry
    function proposeRemoveSupervisor(address account) external returns (uint256 proposalId) {
        bytes32 proposerCode = _requireActiveAdmin();
        if (!_supervisors.contains(account)) revert ConsortiumRegistryNotSupervisor(account);
        proposalId = _newProposal(proposerCode, ProposalKind.RemoveSupervisor, bytes32(0), account, 0);
        _recordApproval(proposalId, proposerCode);
    }

    /// @inheritdoc IConsortiumRegistry
    function approve(uint256 proposalId) external {
        bytes32 code = _requireActiveAdmin();
        _requireOpen(proposalId);
        if (_approved[proposalId][code]) revert ConsortiumRegistryAlreadyApproved(proposalId, code);
        _recordApproval(proposalId, code);
    }

    /// @inheritdoc IConsortiumRegistry
    function execute(uint256 proposalId) external {
        _requireOpen(proposalId);
        uint256 approvals = _activeApprovals(proposalId);
        if (approvals < _threshold) {
            revert ConsortiumRegistryThresholdNotReached(proposalId, approvals, _threshold);
        }
        _execute(proposalId);
    }

    // ------------------------------------------------------- self-management

    /// @inheritdoc IConsortiumRegistry
    function setBroker(address newBroker) external {
        bytes32 code = _requireActiveAdmin();
        _requireBindable(newBroker, code);
        DepartmentData storage d = _departments[code];
        address previous = d.broker;
        delete _bindings[previous];
        d.broker = newBroker;
        _bind(newBroker, code, AccountRole.Broker);
        d.updatedAt = uint64(block.timestamp);
        emit BrokerRotated(code, previous, newBroker);
    }

    /// @inheritdoc IConsortiumRegistry
    function setEncryptionKey(bytes calldata encryptionKey) external {
        bytes32 code = _requireActiveAdmin();
        _checkEncryptionKey(code, encryptionKey);
        DepartmentData storage d = _departments[code];
        d.encryptionKey = encryptionKey;
        d.updatedAt = uint64(block.timestamp);
        emit EncryptionKeyRotated(code, msg.sender, encryptionKey);
    }

    /// @inheritdoc IConsortiumRegistry
    function setEndpoint(string calldata endpoint) external {
        bytes32 code = _requireActiveAdmin();
        _checkEndpoint(code, endpoint);
        DepartmentData storage d = _departments[code];
        d.endpoint = endpoint;
        d.updatedAt = uint64(block.timestamp);
        emit EndpointChanged(code, msg.sender, endpoint);
    }

    /// @inheritdoc IConsortiumRegistry
    function addAdmin(address account) external {
        bytes32 code = _requireActiveAdmin();
        _requireBindable(account, code);
        DepartmentData storage d = _departments[code];
        uint256 count = d.admins.length() + 1;
        if (count > _MAX_ADMINS) revert ConsortiumRegistryTooManyAdmins(code, count, _MAX_ADMINS);
        d.admins.add(account);
        _bind(account, code, AccountRole.Admin);
        d.updatedAt = uint64(block.timestamp);
        emit AdminAdded(code, account, msg.sender);
    }

    /// @inheritdoc IConsortiumRegistry
    function removeAdmin(address account) external {
        bytes32 code = _requireActiveAdmin();
        DepartmentData storage d = _departments[code];
        if (!d.admins.contains(account)) revert ConsortiumRegistryNotAdmin(code, account);
        if (d.admins.length() == 1) revert ConsortiumRegistryLastAdmin(code);
        d.admins.remove(account);
        delete _bindings[account];
        d.updatedAt = uint64(block.timestamp);
        emit AdminRemoved(code, account, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IConsortiumRegistry
    function maxNameLength() external pure returns (uint256) {
        return _MAX_NAME_LENGTH;
    }

    /// @inheritdoc IConsortiumRegistry
    function maxEndpointLength() external pure returns (uint256) {
        return _MAX_ENDPOINT_LENGTH;
    }

    /// @inheritdoc IConsortiumRegistry
    function maxEncryptionKeyLength() external pure returns (uint256) {
        return _MAX_ENCRYPTION_KEY_LENGTH;
    }

    /// @inheritdoc IConsortiumRegistry
    function maxAdmins() external pure returns (uint256) {
        return _MAX_ADMINS;
    }

    /// @inheritdoc IConsortiumRegistry
    function maxProposalLifetime() external pure returns (uint64) {
        return _MAX_PROPOSAL_LIFETIME;
    }

    /// @inheritdoc IConsortiumRegistry
    function activeDepartments() external view returns (bytes32[] memory codes) {
        return _active.values();
    }

    /// @inheritdoc IConsortiumRegistry
    function activeDepartmentCount() external view returns (uint256) {
        return _active.length();
    }

    /// @inheritdoc IConsortiumRegistry
    function allDepartments() external view returns (bytes32[] memory codes) {
        return _allCodes;
    }

    /// @inheritdoc IConsortiumRegistry
    function activeAccounts() external view returns (address[] memory accounts) {
        uint256 n = _active.length();
        uint256 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            total += 1 + _departments[_active.at(i)].admins.length();
        }
        accounts = new address[](total);
        uint256 k = 0;
        for (uint256 i = 0; i < n; ++i) {
            DepartmentData storage d = _departments[_active.at(i)];
            accounts[k++] = d.broker;
            uint256 m = d.admins.length();
            for (uint256 j = 0; j < m; ++j) {
                accounts[k++] = d.admins.at(j);
            }
        }
    }

    /// @inheritdoc IConsortiumRegistry
    function getDepartment(bytes32 code) external view returns (Department memory) {
        DepartmentData storage d = _departments[code];
        if (d.status == DepartmentStatus.None) revert ConsortiumRegistryUnknownDepartment(code);
        return Department({
            code: code,
            name: d.name,
            broker: d.broker,
            admins: d.admins.values(),
            encryptionKey: d.encryptionKey,
            endpoint: d.endpoint,
            status: d.status,
            joinedAt: d.joinedAt,
            updatedAt: d.updatedAt
        });
    }

    /// @inheritdoc IConsortiumRegistry
    function departmentStatus(bytes32 code) external view returns (DepartmentStatus) {
        return _departments[code].status;
    }

    /// @inheritdoc IConsortiumRegistry
    function departmentOf(address account) external view returns (bytes32 code, AccountRole role) {
        Binding storage b = _bindings[account];
        return (b.code, b.role);
    }

    /// @inheritdoc IConsortiumRegistry
    function isActiveBroker(bytes32 code, address account) external view returns (bool) {
        Binding storage b = _bindings[account];
        return b.role == AccountRole.Broker && b.code == code
            && _departments[code].status == DepartmentStatus.Active;
    }

    /// @inheritdoc IConsortiumRegistry
    function isActiveAdmin(bytes32 code, address account) external view returns (bool) {
        Binding storage b = _bindings[account];
        return b.role == AccountRole.Admin && b.code == code
            && _departments[code].status == DepartmentStatus.Active;
    }

    /// @inheritdoc IConsortiumRegistry
    function isValidDepartmentCode(bytes32 code) public pure returns (bool) {
        uint256 len = 0;
        while (len < 32 && code[len] != 0) {
            bytes1 c = code[len];
            bool ok = (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_";
            if (!ok) return false;
            ++len;
        }
        if (len < 2 || len > 16) return false;
        // Zero padding: every byte after the first zero must be zero.
        return uint256(code) << (8 * len) == 0;
    }

    /// @inheritdoc IConsortiumRegistry
    function isSupervisor(address account) external view returns (bool) {
        return _supervisors.contains(account);
    }

    /// @inheritdoc IConsortiumRegistry
    function supervisors() external view returns (address[] memory) {
        return _supervisors.values();
    }

    /// @inheritdoc IConsortiumRegistry
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @inheritdoc IConsortiumRegistry
    function proposalLifetime() external view returns (uint64) {
        return _proposalLifetime;
    }

    /// @inheritdoc IConsortiumRegistry
    function proposalCount() external view returns (uint256) {
        return _proposalCount;
    }

    /// @inheritdoc IConsortiumRegistry
    function getProposal(uint256 proposalId) external view returns (Proposal memory) {
        ProposalData storage p = _proposals[_requireProposal(proposalId)];
        uint64 expiresAt = p.expiresAt;
        return Proposal({
            id: proposalId,
            kind: p.kind,
            status: _statusOf(p),
            proposerDepartment: p.proposerDepartment,
            proposer: p.proposer,
            targetDepartment: p.targetDepartment,
            targetAccount: p.targetAccount,
            newThreshold: p.newThreshold,
            createdAt: expiresAt - _proposalLifetime,
            expiresAt: expiresAt,
            executedAt: p.executedAt,
            approvalCount: uint32(_approvals[proposalId].length)
        });
    }

    /// @inheritdoc IConsortiumRegistry
    function proposedDepartment(uint256 proposalId) external view returns (DepartmentInit memory) {
        ProposalKind kind = _proposals[_requireProposal(proposalId)].kind;
        if (kind != ProposalKind.AddDepartment) revert ConsortiumRegistryWrongProposalKind(proposalId, kind);
        return _proposedDepartments[proposalId];
    }

    /// @inheritdoc IConsortiumRegistry
    function proposalApprovals(uint256 proposalId) external view returns (bytes32[] memory) {
        return _approvals[_requireProposal(proposalId)];
    }

    /// @inheritdoc IConsortiumRegistry
    function activeApprovalCount(uint256 proposalId) external view returns (uint256) {
        return _activeApprovals(_requireProposal(proposalId));
    }

    /// @inheritdoc IConsortiumRegistry
    function hasApproved(uint256 proposalId, bytes32 code) external view returns (bool) {
        return _approved[proposalId][code];
    }

    // --------------------------------------------------------------- internals

    /// @dev The caller's department, which must be active, with the caller as an admin.
    function _requireActiveAdmin() private view returns (bytes32 code) {
        Binding storage b = _bindings[msg.sender];
        if (b.role != AccountRole.Admin || _departments[b.code].status != DepartmentStatus.Active) {
            revert ConsortiumRegistryNotActiveAdmin(msg.sender);
        }
        return b.code;
    }

    /// @dev Reverts unless `proposalId` exists; returns it.
    function _requireProposal(uint256 proposalId) private view returns (uint256) {
        if (proposalId == 0 || proposalId > _proposalCount) revert ConsortiumRegistryUnknownProposal(proposalId);
        return proposalId;
    }

    /// @dev Reverts unless `proposalId` exists, is pending and not expired.
    function _requireOpen(uint256 proposalId) private view {
        ProposalData storage p = _proposals[_requireProposal(proposalId)];
        if (p.status != ProposalStatus.Pending) revert ConsortiumRegistryProposalNotPending(proposalId, p.status);
        if (block.timestamp >= p.expiresAt) revert ConsortiumRegistryProposalExpired(proposalId, p.expiresAt);
    }

    /// @dev Stored status, with Expired substituted for a pending proposal past its lifetime.
    function _statusOf(ProposalData storage p) private view returns (ProposalStatus) {
        if (p.status == ProposalStatus.Pending && block.timestamp >= p.expiresAt) return ProposalStatus.Expired;
        return p.status;
    }

    /// @dev Number of departments that approved `proposalId` and are active now.
    function _activeApprovals(uint256 proposalId) private view returns (uint256 count) {
        bytes32[] storage codes = _approvals[proposalId];
        for (uint256 i = 0; i < codes.length; ++i) {
            if (_departments[codes[i]].status == DepartmentStatus.Active) ++count;
        }
    }

    /// @dev Stores a new pending proposal and emits {ProposalCreated}.
    function _newProposal(
        bytes32 proposerCode,
        ProposalKind kind,
        bytes32 targetDepartment,
        address targetAccount,
        uint256 newThreshold
    ) private returns (uint256 id) {
        id = ++_proposalCount;
        uint64 expiresAt = uint64(block.timestamp) + _proposalLifetime;
        _proposals[id] = ProposalData({
            proposer: msg.sender,
            kind: kind,
            status: ProposalStatus.Pending,
            expiresAt: expiresAt,
            targetAccount: targetAccount,
            executedAt: 0,
            proposerDepartment: proposerCode,
            targetDepartment: targetDepartment,
            newThreshold: newThreshold
        });
        emit ProposalCreated(
            id, kind, proposerCode, msg.sender, targetDepartment, targetAccount, newThreshold, expiresAt
        );
    }

    /// @dev Records `code`'s approval and executes the proposal once the threshold is met.
    function _recordApproval(uint256 proposalId, bytes32 code) private {
        _approved[proposalId][code] = true;
        _approvals[proposalId].push(code);
        uint256 approvals = _activeApprovals(proposalId);
        emit ProposalApproved(proposalId, code, msg.sender, approvals);
        if (approvals >= _threshold) _execute(proposalId);
    }

    /// @dev Applies proposal `proposalId`, re-validating it against the current state (each
    /// kind checks before it changes anything), then marks it executed.
    function _execute(uint256 proposalId) private {
        ProposalData storage p = _proposals[proposalId];
        ProposalKind kind = p.kind;
        bytes32 code = p.targetDepartment;
        if (kind == ProposalKind.AddDepartment) {
            _addDepartment(_proposedDepartments[proposalId], proposalId);
        } else if (kind == ProposalKind.SuspendDepartment) {
            _validateSuspend(code);
            _active.remove(code);
            _setStatus(code, DepartmentStatus.Suspended);
            emit DepartmentSuspended(code, proposalId);
            _clampThreshold(proposalId);
        } else if (kind == ProposalKind.RemoveDepartment) {
            _validateRemove(code);
            _active.remove(code);
            _setStatus(code, DepartmentStatus.Removed);
            emit DepartmentRemoved(code, proposalId);
            _clampThreshold(proposalId);
        } else if (kind == ProposalKind.ReactivateDepartment) {
            _validateReactivate(code);
            _active.add(code);
            _setStatus(code, DepartmentStatus.Active);
            emit DepartmentReactivated(code, proposalId);
        } else if (kind == ProposalKind.ChangeThreshold) {
            _validateThreshold(p.newThreshold);
            uint256 previous = _threshold;
            _threshold = p.newThreshold;
            emit ThresholdChanged(previous, p.newThreshold, proposalId);
        } else if (kind == ProposalKind.AddSupervisor) {
            _addSupervisor(p.targetAccount, proposalId);
        } else {
            address account = p.targetAccount;
            if (!_supervisors.remove(account)) revert ConsortiumRegistryNotSupervisor(account);
            emit SupervisorRemoved(account, proposalId);
        }
        p.status = ProposalStatus.Executed;
        p.executedAt = uint64(block.timestamp);
        emit ProposalExecuted(proposalId, kind, msg.sender);
    }

    /// @dev Lowers the threshold to the number of active departments if it exceeds it.
    function _clampThreshold(uint256 proposalId) private {
        uint256 activeCount = _active.length();
        if (_threshold > activeCount) {
            uint256 previous = _threshold;
            _threshold = activeCount;
            emit ThresholdChanged(previous, activeCount, proposalId);
        }
    }

    /// @dev Sets a department's status and touches its update time.
    function _setStatus(bytes32 code, DepartmentStatus status) private {
        DepartmentData storage d = _departments[code];
        d.status = status;
        d.updatedAt = uint64(block.timestamp);
    }

    /// @dev Registers a validated department as active and binds its accounts.
    function _addDepartment(DepartmentInit memory init, uint256 proposalId) private {
        _validateNewDepartment(init);
        bytes32 code = init.code;
        DepartmentData storage d = _departments[code];
        d.name = init.name;
        d.broker = init.broker;
        _bind(init.broker, code, AccountRole.Broker);
        for (uint256 i = 0; i < init.admins.length; ++i) {
            d.admins.add(init.admins[i]);
            _bind(init.admins[i], code, AccountRole.Admin);
        }
        d.encryptionKey = init.encryptionKey;
        d.endpoint = init.endpoint;
        d.status = DepartmentStatus.Active;
        d.joinedAt = uint64(block.timestamp);
        d.updatedAt = uint64(block.timestamp);
        _allCodes.push(code);
        _active.add(code);
        emit DepartmentAdded(
            code, proposalId, init.name, init.broker, init.admins, init.encryptionKey, init.endpoint
        );
    }

    /// @dev Binds `account` to `code` in `role` (the caller has checked it is bindable).
    function _bind(address account, bytes32 code, AccountRole role) private {
        _bindings[account] = Binding({code: code, role: role});
        _boundTo[account] = code;
    }

    /// @dev Reverts unless `account` may take a (new) role in department `code`.
    function _requireBindable(address account, bytes32 code) private view {
        if (account == address(0)) revert ConsortiumRegistryZeroAccount();
        if (_supervisors.contains(account)) revert ConsortiumRegistryAccountIsSupervisor(account);
        bytes32 bound = _boundTo[account];
        if (bound != bytes32(0) && (bound != code || _bindings[account].role != AccountRole.None)) {
            revert ConsortiumRegistryAccountInUse(account, bound);
        }
    }

    /// @dev Reverts unless `init` could be registered now.
    function _validateNewDepartment(DepartmentInit memory init) private view {
        bytes32 code = init.code;
        if (!isValidDepartmentCode(code)) revert ConsortiumRegistryInvalidCode(code);
        if (_departments[code].status != DepartmentStatus.None) revert ConsortiumRegistryDepartmentExists(code);
        uint256 nameLength = bytes(init.name).length;
        if (nameLength == 0) revert ConsortiumRegistryEmptyName(code);
        if (nameLength > _MAX_NAME_LENGTH) revert ConsortiumRegistryNameTooLong(code, nameLength, _MAX_NAME_LENGTH);
        _checkEncryptionKey(code, init.encryptionKey);
        _checkEndpoint(code, init.endpoint);
        if (init.admins.length == 0) revert ConsortiumRegistryNoAdmins(code);
        if (init.admins.length > _MAX_ADMINS) {
            revert ConsortiumRegistryTooManyAdmins(code, init.admins.length, _MAX_ADMINS);
        }
        // A new code has no bound accounts, so any bound account belongs to someone else.
        _requireBindable(init.broker, code);
        for (uint256 i = 0; i < init.admins.length; ++i) {
            address admin = init.admins[i];
            _requireBindable(admin, code);
            if (admin == init.broker) revert ConsortiumRegistryAccountInUse(admin, code);
            for (uint256 j = 0; j < i; ++j) {
                if (init.admins[j] == admin) revert ConsortiumRegistryAccountInUse(admin, code);
            }
        }
    }

    /// @dev Reverts unless `key` is a present, not too long encryption key for `code`.
    function _checkEncryptionKey(bytes32 code, bytes memory key) private pure {
        if (key.length == 0) revert ConsortiumRegistryEmptyEncryptionKey(code);
        if (key.length > _MAX_ENCRYPTION_KEY_LENGTH) {
            revert ConsortiumRegistryEncryptionKeyTooLong(code, key.length, _MAX_ENCRYPTION_KEY_LENGTH);
        }
    }

    /// @dev Reverts unless `endpoint` is a present, not too long endpoint for `code`.
    function _checkEndpoint(bytes32 code, string memory endpoint) private pure {
        uint256 length = bytes(endpoint).length;
        if (length == 0) revert ConsortiumRegistryEmptyEndpoint(code);
        if (length > _MAX_ENDPOINT_LENGTH) revert ConsortiumRegistryEndpointTooLong(code, length, _MAX_ENDPOINT_LENGTH);
    }

    /// @dev Reverts unless `code` is active and not the last active department.
    function _validateSuspend(bytes32 code) private view {
        DepartmentStatus status = _requireKnown(code);
        if (status != DepartmentStatus.Active) revert ConsortiumRegistryInvalidDepartmentStatus(code, status);
        if (_active.length() == 1) revert ConsortiumRegistryLastActiveDepartment(code);
    }

    /// @dev Reverts unless `code` is active (and not the last) or suspended.
    function _validateRemove(bytes32 code) private view {
        DepartmentStatus status = _requireKnown(code);
        if (status == DepartmentStatus.Active) {
            if (_active.length() == 1) revert ConsortiumRegistryLastActiveDepartment(code);
        } else if (status != DepartmentStatus.Suspended) {
            revert ConsortiumRegistryInvalidDepartmentStatus(code, status);
        }
    }

    /// @dev Reverts unless `code` is suspended.
    function _validateReactivate(bytes32 code) private view {
        DepartmentStatus status = _requireKnown(code);
        if (status != DepartmentStatus.Suspended) revert ConsortiumRegistryInvalidDepartmentStatus(code, status);
    }

    /// @dev Reverts unless 1 <= `newThreshold` <= active departments.
    function _validateThreshold(uint256 newThreshold) private view {
        uint256 activeCount = _active.length();
        if (newThreshold == 0 || newThreshold > activeCount) {
            revert ConsortiumRegistryInvalidThreshold(newThreshold, activeCount);
        }
    }

    /// @dev Reverts unless `account` can become a supervisor.
    function _validateNewSupervisor(address account) private view {
        if (account == address(0)) revert ConsortiumRegistryZeroAccount();
        if (_supervisors.contains(account)) revert ConsortiumRegistryAlreadySupervisor(account);
        bytes32 bound = _boundTo[account];
        if (bound != bytes32(0)) revert ConsortiumRegistryAccountInUse(account, bound);
    }

    /// @dev Adds a validated supervisor and emits {SupervisorAdded}.
    function _addSupervisor(address account, uint256 proposalId) private {
        _validateNewSupervisor(account);
        _supervisors.add(account);
        emit SupervisorAdded(account, proposalId);
    }

    /// @dev Status of `code`, reverting when it was never registered.
    function _requireKnown(bytes32 code) private view returns (DepartmentStatus status) {
        status = _departments[code].status;
        if (status == DepartmentStatus.None) revert ConsortiumRegistryUnknownDepartment(code);
    }
}
