// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";

import {ITokenRegistry} from "./interfaces/ITokenRegistry.sol";

/// @title TokenRegistry
/// @notice Equity tokens by symbol, and which of them each vault may trade.
contract TokenRegistry is ITokenRegistry, AccessControl {
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    uint256 private constant MAX_SYMBOL_LENGTH = 11;

    mapping(bytes32 symbolHash => address) private _bySymbol;
    mapping(address token => string) private _symbols;
    mapping(uint256 vaultId => mapping(address token => bool)) private _allowed;
    address[] private _tokens;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    /// @inheritdoc ITokenRegistry
    function registerToken(string calldata symbol, address token) external onlyRole(OPERATOR_ROLE) {
        if (token == address(0)) revert ZeroAddress();
        if (!_isValidSymbol(bytes(symbol))) revert InvalidSymbol(symbol);
        bytes32 key = keccak256(bytes(symbol));
        if (_bySymbol[key] != address(0)) revert SymbolTaken(symbol, _bySymbol[key]);
        if (bytes(_symbols[token]).length != 0) revert TokenAlreadyRegistered(token);
        _bySymbol[key] = token;
        _symbols[token] = symbol;
        _tokens.push(token);
        emit TokenRegistered(symbol, token, IERC20Metadata(token).decimals());
    }

    /// @inheritdoc ITokenRegistry
    function setAllowed(uint256 vaultId, address token, bool allowed) external onlyRole(OPERATOR_ROLE) {
        if (bytes(_symbols[token]).length == 0) revert UnknownToken(token);
        _allowed[vaultId][token] = allowed;
        emit TokenAllowed(vaultId, token, allowed);
    }

    /// @inheritdoc ITokenRegistry
    function isAllowed(uint256 vaultId, address token) external view returns (bool) {
        return _allowed[vaultId][token];
    }

    /// @inheritdoc ITokenRegistry
    function tokenOf(string calldata symbol) external view returns (address) {
        return _bySymbol[keccak256(bytes(symbol))];
    }

    /// @inheritdoc ITokenRegistry
    function symbolOf(address token) external view returns (string memory) {
        return _symbols[token];
    }

    /// @inheritdoc ITokenRegistry
    function tokens() external view returns (address[] memory) {
        return _tokens;
    }

    function _isValidSymbol(bytes calldata s) private pure returns (bool) {
        if (s.length == 0 || s.length > MAX_SYMBOL_LENGTH) return false;
        for (uint256 i; i < s.length; ++i) {
            bytes1 c = s[i];
            bool ok = (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == ".";
            if (!ok) return false;
        }
        return true;
    }
}
