// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";

/// @title EquityToken
/// @notice A tokenized equity (18 decimals). Its issuer, the venue, is the only minter, and the only
///         account that may burn a holder's tokens without an allowance: it redeems them when it buys
///         them back (`redeem`). Any holder may burn its own tokens.
contract EquityToken is ERC20, ERC20Burnable {
    address public immutable minter;

    error NotMinter(address caller);

    constructor(string memory name_, string memory symbol_, address minter_) ERC20(name_, symbol_) {
        minter = minter_;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, amount);
    }

    /// @notice Issuer redemption: the minter burns `amount` of `from`'s tokens, with no allowance (the
    ///         venue's sale takes the seller's tokens this way instead of through its own balance).
    ///         Minter only; a holder's other way out is `burn`.
    function redeem(address from, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _burn(from, amount);
    }
}
