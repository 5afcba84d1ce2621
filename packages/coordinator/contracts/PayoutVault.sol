// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// The few ERC-20 calls the vault makes. Some tokens return nothing from `transfer`; `_safeTransfer` accepts that.
interface IERC20Minimal {
    function transfer(address to, uint256 amount) external returns (bool);
    function balanceOf(address account) external view returns (uint256);
}

/// Arbitrum's system contract at address 100.
interface IArbSys {
    function arbBlockNumber() external view returns (uint256);
}

/// @title PayoutVault
/// @notice Holds an owner-funded ERC-20 balance (USDC) and pays node operators in batches.
/// Trust: `owner` may change the payer and withdraw; `payer` may only call `settle`, which can move at most the
/// vault's own balance. Each batch id settles at most once, so resubmitting a batch after a crash pays nothing twice.
contract PayoutVault {
    IERC20Minimal public immutable token;
    address public immutable owner;
    address public payer;

    /// batchId => block number it settled in (0: not settled), as receipts and eth_getLogs number blocks, so the
    /// settling transaction can be found from the batch id alone (see _blockNumber).
    mapping(bytes32 => uint256) public settledAt;

    event Paid(bytes32 indexed batchId, address indexed recipient, uint256 amount);
    event BatchSettled(bytes32 indexed batchId, uint256 count, uint256 total);
    event PayerChanged(address indexed previousPayer, address indexed newPayer);
    event Withdrawn(address indexed to, uint256 amount);

    error NotOwner();
    error NotPayer();
    error ZeroAddress();
    error EmptyBatch();
    error LengthMismatch();
    error AlreadySettled(bytes32 batchId);
    error TransferFailed(address to, uint256 amount);
    error NotAContract(address token);

    constructor(address token_, address payer_) {
        if (token_ == address(0) || payer_ == address(0)) revert ZeroAddress();
        // A call to an address without code "succeeds" with no data; refusing such a token here keeps _safeTransfer simple.
        if (token_.code.length == 0) revert NotAContract(token_);
        token = IERC20Minimal(token_);
        owner = msg.sender;
        payer = payer_;
        emit PayerChanged(address(0), payer_);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    function setPayer(address newPayer) external onlyOwner {
        if (newPayer == address(0)) revert ZeroAddress();
        emit PayerChanged(payer, newPayer);
        payer = newPayer;
    }

    function withdraw(address to, uint256 amount) external onlyOwner {
        if (to == address(0)) revert ZeroAddress();
        _safeTransfer(to, amount);
        emit Withdrawn(to, amount);
    }

    /// @notice Pays `amounts[i]` to `recipients[i]` for every i, all or nothing, once per `batchId`.
    function settle(bytes32 batchId, address[] calldata recipients, uint256[] calldata amounts) external {
        if (msg.sender != payer) revert NotPayer();
        uint256 count = recipients.length;
        if (count == 0) revert EmptyBatch();
        if (count != amounts.length) revert LengthMismatch();
        if (settledAt[batchId] != 0) revert AlreadySettled(batchId);
        // Marked before the transfers (checks-effects-interactions): a re-entering token cannot settle it twice.
        settledAt[batchId] = _blockNumber();

        uint256 total = 0;
        for (uint256 i = 0; i < count; i++) {
            address to = recipients[i];
            if (to == address(0)) revert ZeroAddress();
            uint256 amount = amounts[i];
            total += amount;
            _safeTransfer(to, amount);
            emit Paid(batchId, to, amount);
        }
        emit BatchSettled(batchId, count, total);
    }

    function isSettled(bytes32 batchId) external view returns (bool) {
        return settledAt[batchId] != 0;
    }

    function balance() external view returns (uint256) {
        return token.balanceOf(address(this));
    }

    /// The number of the block being built. On Arbitrum One (42161) and Arbitrum Sepolia (421614) `block.number` is an
    /// estimate of the L1 block number, while logs and receipts carry the L2 one, which ArbSys gives.
    function _blockNumber() private view returns (uint256) {
        if (block.chainid == 42161 || block.chainid == 421614) return IArbSys(address(100)).arbBlockNumber();
        return block.number;
    }

    /// Reverts unless the token call succeeded and returned either nothing or `true`.
    function _safeTransfer(address to, uint256 amount) private {
        (bool ok, bytes memory data) = address(token).call(abi.encodeCall(IERC20Minimal.transfer, (to, amount)));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed(to, amount);
    }
}
