// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {EquityToken} from "../../src/tokens/EquityToken.sol";
import {MockUSDC} from "../../src/tokens/MockUSDC.sol";
import {Reentrant} from "./Reentrant.sol";

/// @notice USDC with a post-transfer hook (as ERC-777 / ERC-1363-style tokens have): the armed
///         call runs after the balances moved, before the caller has finished.
/// @dev    The router's USDC is immutable and set by its admin: a hostile one is a wrong deployment.
contract HostileUSDC is MockUSDC, Reentrant {
    constructor(address owner_) MockUSDC(owner_) {}

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        _reenter();
    }
}

/// @notice An equity token with the same post-transfer hook; fires on transfers, mints and burns.
/// @dev    Equity tokens are registered and allowed per vault by the operator (TokenRegistry).
contract HostileEquityToken is EquityToken, Reentrant {
    constructor(string memory name_, string memory symbol_, address minter_) EquityToken(name_, symbol_, minter_) {}

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        _reenter();
    }
}
