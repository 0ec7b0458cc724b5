// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IConsortiumRegistry
 * @notice Membership of the govshare consortium: departments, their accounts and keys,
 * threshold governance over who is a member, and the supervisors that overdue
 * requests are escalated to.
 *
 * A department code is a `bytes32` holding 2-16 ASCII characters from `[A-Z0-9_]`,
 * left-aligned and zero padded (e.g. `"TAX"`). An account belongs to at most one
 * department, as its broker or as one of its admins, and is never reused by another
 * department (so a signature always names one department, also in old records).
 *
 * What a department registers is bounded so that every member's software can hold it:
 * a name of at most {maxNameLength} bytes, an endpoint of at most {maxEndpointLength},
 * an encryption key of at most {maxEncryptionKeyLength} and at most {maxAdmins} admins.
 */
interface IConsortiumRegistry {
    // ------------------------------------------------------------------ types

    /// @notice Lifecycle of a department. `Removed` is final.
    enum DepartmentStatus {
        None, // 0: never registered
        Active, // 1: member; its broker and admins may act
        Suspended, // 2: temporarily barred; may be reactivated by proposal
        Removed // 3: permanently out; its code and accounts are never reused
    }

    /// @notice What an account is for its department.
    enum AccountRole {
        None, // 0: not a department account (now)
        Broker, // 1: the department's broker service key (anchors, requests, receipts)
        Admin // 2: an administrator's own key (consent, governance, key rotation)
    }

    /// @notice What a governance proposal does when it executes.
    enum ProposalKind {
        AddDepartment, // 0: register `proposedDepartment(id)` as active
        SuspendDepartment, // 1: active -> suspended
        RemoveDepartment, // 2: active or suspended -> removed
        ReactivateDepartment, // 3: suspended -> active
        ChangeThreshold, // 4: set the approval threshold to `newThreshold`
        AddSupervisor, // 5: add `targetAccount` to the supervisors
        RemoveSupervisor // 6: remove `targetAccount` from the supervisors
    }

    /// @notice State of a proposal. `Expired` is computed by the views, never stored.
    enum ProposalStatus {
        None, // 0: no such proposal
        Pending, // 1: collecting approvals
        Executed, // 2: took effect
        Expired // 3: lifetime passed before the threshold was reached
    }

    /// @notice A department as supplied when it is founded or proposed.
    struct DepartmentInit {
        bytes32 code;
        string name;
        address broker;
        address[] admins;
        bytes encryptionKey; // HPKE public key of the department
        string endpoint; // broker base URL other brokers call
    }

    /// @notice A department as stored.
    struct Department {
        bytes32 code;
        string name;
        address broker;
        address[] admins;
        bytes encryptionKey;
        string endpoint;
        DepartmentStatus status;
        uint64 joinedAt; // block timestamp it became a member
        uint64 updatedAt; // block timestamp of the last change to it
    }

    /// @notice A governance proposal as {getProposal} returns it. Fields a kind does not use
    /// are zero. `id`, `createdAt`, `approvalCount` and an `Expired` status are derived when
    /// read, not stored.
    struct Proposal {
        uint256 id;
        ProposalKind kind;
        ProposalStatus status; // Expired when the lifetime has passed while pending
        bytes32 proposerDepartment;
        address proposer;
        bytes32 targetDepartment; // Add/Suspend/Remove/Reactivate
        address targetAccount; // AddSupervisor/RemoveSupervisor
        uint256 newThreshold; // ChangeThreshold
        uint64 createdAt;
        uint64 expiresAt; // valid while block.timestamp < expiresAt
        uint64 executedAt;
        uint32 approvalCount; // departments that approved (active or not now)
    }

    // ----------------------------------------------------------------- errors

    /// @notice `code` is not 2-16 characters of `[A-Z0-9_]`, left-aligned and zero padded.
    error ConsortiumRegistryInvalidCode(bytes32 code);
    /// @notice The department's name is empty.
    error ConsortiumRegistryEmptyName(bytes32 code);
    /// @notice The department's encryption public key is empty.
    error ConsortiumRegistryEmptyEncryptionKey(bytes32 code);
    /// @notice The department's broker endpoint is empty.
    error ConsortiumRegistryEmptyEndpoint(bytes32 code);
    /// @notice A department must have at least one admin.
    error ConsortiumRegistryNoAdmins(bytes32 code);
    /// @notice Department `code`'s name is `length` bytes long; at most `maxLength` are allowed.
    error ConsortiumRegistryNameTooLong(bytes32 code, uint256 length, uint256 maxLength);
    /// @notice Department `code`'s endpoint is `length` bytes long; at most `maxLength` are allowed.
    error ConsortiumRegistryEndpointTooLong(bytes32 code, uint256 length, uint256 maxLength);
    /// @notice Department `code`'s encryption key is `length` bytes long; at most `maxLength`
    /// are allowed.
    error ConsortiumRegistryEncryptionKeyTooLong(bytes32 code, uint256 length, uint256 maxLength);
    /// @notice Department `code` would have `count` admins; at most `maxAdmins` are allowed.
    error ConsortiumRegistryTooManyAdmins(bytes32 code, uint256 count, uint256 maxAdmins);
    /// @notice The zero address cannot be a broker, admin or supervisor.
    error ConsortiumRegistryZeroAccount();
    /// @notice `account` is (or was) an account of department `code` and cannot be bound again.
    error ConsortiumRegistryAccountInUse(address account, bytes32 code);
    /// @notice `account` is a supervisor; supervisors hold no department role.
    error ConsortiumRegistryAccountIsSupervisor(address account);
    /// @notice A department with `code` exists already (in any status).
    error ConsortiumRegistryDepartmentExists(bytes32 code);
    /// @notice No department has `code`.
    error ConsortiumRegistryUnknownDepartment(bytes32 code);
    /// @notice Department `code` is in `status`, which does not allow this.
    error ConsortiumRegistryInvalidDepartmentStatus(bytes32 code, DepartmentStatus status);
    /// @notice The change would leave no active department.
    error ConsortiumRegistryLastActiveDepartment(bytes32 code);
    /// @notice `account` is not an admin account of an active department.
    error ConsortiumRegistryNotActiveAdmin(address account);
    /// @notice `account` is not an admin of department `code`.
    error ConsortiumRegistryNotAdmin(bytes32 code, address account);
    /// @notice Removing the admin would leave department `code` without admins.
    error ConsortiumRegistryLastAdmin(bytes32 code);
    /// @notice `threshold` is not between 1 and the number of active departments `activeCount`.
    error ConsortiumRegistryInvalidThreshold(uint256 threshold, uint256 activeCount);
    /// @notice The proposal lifetime must be positive.
    error ConsortiumRegistryInvalidLifetime(uint64 lifetime);
    /// @notice The consortium needs at least one founding department.
    error ConsortiumRegistryNoFounders();
    /// @notice `account` is already a supervisor.
    error ConsortiumRegistryAlreadySupervisor(address account);
    /// @notice `account` is not a supervisor.
    error ConsortiumRegistryNotSupervisor(address account);
    /// @notice No proposal has `proposalId`.
    error ConsortiumRegistryUnknownProposal(uint256 proposalId);
    /// @notice The proposal is not pending (it executed already).
    error ConsortiumRegistryProposalNotPending(uint256 proposalId, ProposalStatus status);
    /// @notice The proposal's lifetime ended at `expiresAt`.
    error ConsortiumRegistryProposalExpired(uint256 proposalId, uint64 expiresAt);
    /// @notice Department `code` has approved the proposal already.
    error ConsortiumRegistryAlreadyApproved(uint256 proposalId, bytes32 code);
    /// @notice Proposal `proposalId` is of kind `kind`, which this view does not serve.
    error ConsortiumRegistryWrongProposalKind(uint256 proposalId, ProposalKind kind);
    /// @notice Only `approvals` active departments approved; `threshold` are needed.
    error ConsortiumRegistryThresholdNotReached(uint256 proposalId, uint256 approvals, uint256 threshold);

    // ----------------------------------------------------------------- events

    /// @notice Department `code` became a member (founder: `proposalId` 0).
    event DepartmentAdded(
        bytes32 indexed code,
        uint256 indexed proposalId,
        string name,
        address broker,
        address[] admins,
        bytes encryptionKey,
        string endpoint
    );
    /// @notice Department `code` was suspended by proposal `proposalId`.
    event DepartmentSuspended(bytes32 indexed code, uint256 indexed proposalId);
    /// @notice Department `code` was reactivated by proposal `proposalId`.
    event DepartmentReactivated(bytes32 indexed code, uint256 indexed proposalId);
    /// @notice Department `code` was removed for good by proposal `proposalId`.
    event DepartmentRemoved(bytes32 indexed code, uint256 indexed proposalId);
    /// @notice The approval threshold changed (deployment or clamp-on-shrink: see docs).
    event ThresholdChanged(uint256 previousThreshold, uint256 newThreshold, uint256 indexed proposalId);
    /// @notice `account` became a supervisor (deployment: `proposalId` 0).
    event SupervisorAdded(address indexed account, uint256 indexed proposalId);
    /// @notice `account` stopped being a supervisor.
    event SupervisorRemoved(address indexed account, uint256 indexed proposalId);
    /// @notice Proposal `proposalId` was created by `proposer`, an admin of `proposerDepartment`.
    event ProposalCreated(
        uint256 indexed proposalId,
        ProposalKind indexed kind,
        bytes32 indexed proposerDepartment,
        address proposer,
        bytes32 targetDepartment,
        address targetAccount,
        uint256 newThreshold,
        uint64 expiresAt
    );
    /// @notice Department `department` approved, through its admin `approver`.
    /// `approvals` counts the approving departments that are active now.
    event ProposalApproved(
        uint256 indexed proposalId, bytes32 indexed department, address indexed approver, uint256 approvals
    );
    /// @notice Proposal `proposalId` took effect, in a transaction sent by `executor`.
    event ProposalExecuted(uint256 indexed proposalId, ProposalKind indexed kind, address indexed executor);
    /// @notice Department `code`'s broker account changed.
    event BrokerRotated(bytes32 indexed code, address indexed previousBroker, address indexed newBroker);
    /// @notice Department `code`'s encryption public key changed (by admin `by`).
    event EncryptionKeyRotated(bytes32 indexed code, address indexed by, bytes encryptionKey);
    /// @notice Department `code`'s broker endpoint changed (by admin `by`).
    event EndpointChanged(bytes32 indexed code, address indexed by, string endpoint);
    /// @notice `account` became an admin of `code` (added by admin `by`).
    event AdminAdded(bytes32 indexed code, address indexed account, address indexed by);
    /// @notice `account` stopped being an admin of `code` (removed by admin `by`).
    event AdminRemoved(bytes32 indexed code, address indexed account, address indexed by);

    // -------------------------------------------------------------- governance

    /**
     * @notice Proposes adding department `department`; counts as the caller's department's approval.
     * @return proposalId the new proposal's id (sequential, from 1)
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `department` is valid: code format, non-empty name, encryption key and endpoint
     *   within {maxNameLength}, {maxEncryptionKeyLength} and {maxEndpointLength} bytes,
     *   1 to {maxAdmins} admins, no zero, duplicate, supervisor or already bound account;
     * - no department with that code exists.
     */
    function proposeAddDepartment(DepartmentInit calldata department) external returns (uint256 proposalId);

    /**
     * @notice Proposes suspending department `code`.
     * @return proposalId the new proposal's id
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `code` is active and is not the last active department.
     */
    function proposeSuspendDepartment(bytes32 code) external returns (uint256 proposalId);

    /**
     * @notice Proposes removing department `code` for good.
     * @return proposalId the new proposal's id
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `code` is active or suspended, and is not the last active department.
     */
    function proposeRemoveDepartment(bytes32 code) external returns (uint256 proposalId);

    /**
     * @notice Proposes reactivating the suspended department `code`.
     * @return proposalId the new proposal's id
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `code` is suspended.
     */
    function proposeReactivateDepartment(bytes32 code) external returns (uint256 proposalId);

    /**
     * @notice Proposes a new approval threshold.
     * @return proposalId the new proposal's id
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - 1 <= `newThreshold` <= number of active departments (checked again on execution).
     */
    function proposeThreshold(uint256 newThreshold) external returns (uint256 proposalId);

    /**
     * @notice Proposes adding supervisor `account` (escalations of overdue requests go to supervisors).
     * @return proposalId the new proposal's id
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `account` is not zero, not a supervisor, and not (nor ever was) a department account.
     */
    function proposeAddSupervisor(address account) external returns (uint256 proposalId);

    /**
     * @notice Proposes removing supervisor `account`.
     * @return proposalId the new proposal's id
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `account` is a supervisor.
     */
    function proposeRemoveSupervisor(address account) external returns (uint256 proposalId);

    /**
     * @notice Approves proposal `proposalId` for the caller's department; executes it when the
     * approvals of active departments reach the threshold.
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - the proposal exists, is pending and has not expired;
     * - the caller's department has not approved it yet;
     * - if it executes: the proposal is still valid (e.g. the code is still free).
     */
    function approve(uint256 proposalId) external;

    /**
     * @notice Executes a pending proposal that already has enough approvals (e.g. after the
     * threshold was lowered). Anyone may call it.
     *
     * Requirements:
     * - the proposal exists, is pending and has not expired;
     * - approvals of currently active departments >= threshold;
     * - the proposal is still valid.
     */
    function execute(uint256 proposalId) external;

    // ------------------------------------------------------- self-management

    /**
     * @notice Replaces the caller's department's broker account.
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `newBroker` is not zero, not a supervisor, and not bound to another department
     *   (nor currently an admin of this one).
     */
    function setBroker(address newBroker) external;

    /**
     * @notice Replaces the caller's department's HPKE encryption public key.
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `encryptionKey` is not empty and at most {maxEncryptionKeyLength} bytes long.
     */
    function setEncryptionKey(bytes calldata encryptionKey) external;

    /**
     * @notice Replaces the caller's department's broker endpoint URL.
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `endpoint` is not empty and at most {maxEndpointLength} bytes long.
     */
    function setEndpoint(string calldata endpoint) external;

    /**
     * @notice Adds `account` as an admin of the caller's department.
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `account` is not zero, not a supervisor, and not bound to another department
     *   (nor currently the broker or an admin of this one);
     * - the department has fewer than {maxAdmins} admins.
     */
    function addAdmin(address account) external;

    /**
     * @notice Removes `account` from the admins of the caller's department (may be the caller).
     *
     * Requirements:
     * - the caller is an admin of an active department;
     * - `account` is an admin of that department and not its last one.
     */
    function removeAdmin(address account) external;

    // ------------------------------------------------------------------ views

    /**
     * @notice Longest department name, in bytes (256).
     *
     * Requirements: none.
     */
    function maxNameLength() external pure returns (uint256);

    /**
     * @notice Longest broker endpoint URL, in bytes (2,048).
     *
     * Requirements: none.
     */
    function maxEndpointLength() external pure returns (uint256);

    /**
     * @notice Longest encryption public key, in bytes (2,048).
     *
     * Requirements: none.
     */
    function maxEncryptionKeyLength() external pure returns (uint256);

    /**
     * @notice Most admin accounts one department may have (32).
     *
     * Requirements: none.
     */
    function maxAdmins() external pure returns (uint256);

    /**
     * @notice Longest proposal lifetime the constructor accepts, in seconds (365 days).
     *
     * Requirements: none.
     */
    function maxProposalLifetime() external pure returns (uint64);

    /**
     * @notice Codes of all active departments, in no particular order.
     *
     * Requirements: none.
     */
    function activeDepartments() external view returns (bytes32[] memory codes);

    /**
     * @notice Number of active departments.
     *
     * Requirements: none.
     */
    function activeDepartmentCount() external view returns (uint256);

    /**
     * @notice Codes of every department ever registered (any status), in registration order.
     *
     * Requirements: none.
     */
    function allDepartments() external view returns (bytes32[] memory codes);

    /**
     * @notice Broker and admin accounts of all active departments (for node allowlists).
     *
     * Requirements: none.
     */
    function activeAccounts() external view returns (address[] memory accounts);

    /**
     * @notice The stored department `code`.
     *
     * Requirements:
     * - `code` is a registered department (any status).
     */
    function getDepartment(bytes32 code) external view returns (Department memory);

    /**
     * @notice Status of department `code` (`None` if unknown).
     *
     * Requirements: none.
     */
    function departmentStatus(bytes32 code) external view returns (DepartmentStatus);

    /**
     * @notice Which department `account` currently belongs to, and in which role
     * (`(0, None)` if none). Does not look at the department's status.
     *
     * Requirements: none.
     */
    function departmentOf(address account) external view returns (bytes32 code, AccountRole role);

    /**
     * @notice Whether `account` is the broker of `code` and `code` is active.
     *
     * Requirements: none.
     */
    function isActiveBroker(bytes32 code, address account) external view returns (bool);

    /**
     * @notice Whether `account` is an admin of `code` and `code` is active.
     *
     * Requirements: none.
     */
    function isActiveAdmin(bytes32 code, address account) external view returns (bool);

    /**
     * @notice Whether `code` is a well-formed department code (2-16 of `[A-Z0-9_]`,
     * left-aligned, zero padded).
     *
     * Requirements: none.
     */
    function isValidDepartmentCode(bytes32 code) external pure returns (bool);

    /**
     * @notice Whether `account` is a supervisor.
     *
     * Requirements: none.
     */
    function isSupervisor(address account) external view returns (bool);

    /**
     * @notice All supervisors.
     *
     * Requirements: none.
     */
    function supervisors() external view returns (address[] memory);

    /**
     * @notice Approvals (of distinct active departments) a proposal needs.
     *
     * Requirements: none.
     */
    function threshold() external view returns (uint256);

    /**
     * @notice Seconds a proposal stays open after its creation.
     *
     * Requirements: none.
     */
    function proposalLifetime() external view returns (uint64);

    /**
     * @notice Number of proposals created (the last id).
     *
     * Requirements: none.
     */
    function proposalCount() external view returns (uint256);

    /**
     * @notice Proposal `proposalId`, with `status` Expired once its lifetime has passed.
     *
     * Requirements:
     * - the proposal exists.
     */
    function getProposal(uint256 proposalId) external view returns (Proposal memory);

    /**
     * @notice The department an AddDepartment proposal would register.
     *
     * Requirements:
     * - the proposal exists and is of kind AddDepartment.
     */
    function proposedDepartment(uint256 proposalId) external view returns (DepartmentInit memory);

    /**
     * @notice Departments that approved `proposalId`, in order (active or not now).
     *
     * Requirements:
     * - the proposal exists.
     */
    function proposalApprovals(uint256 proposalId) external view returns (bytes32[] memory);

    /**
     * @notice Number of departments that approved `proposalId` and are active now (what counts).
     *
     * Requirements:
     * - the proposal exists.
     */
    function activeApprovalCount(uint256 proposalId) external view returns (uint256);

    /**
     * @notice Whether department `code` approved `proposalId`.
     *
     * Requirements: none.
     */
    function hasApproved(uint256 proposalId, bytes32 code) external view returns (bool);
}
