// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";

/// @title EquityToken
/// @notice A tokenized equity (18 decimals). Its issuer, the venue, is the only minter; any holder
///         may burn its own tokens (the venue burns what it redeems).
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
}
