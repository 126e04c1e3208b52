// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {ITokenRegistry} from "../src/interfaces/ITokenRegistry.sol";
import {TokenRegistry} from "../src/TokenRegistry.sol";
import {EquityToken} from "../src/tokens/EquityToken.sol";
import {MockUSDC} from "../src/tokens/MockUSDC.sol";
import {TestBase} from "./utils/Vm.sol";

/// @notice TokenRegistry on its own: symbol rules, `symbol ↔ token` uniqueness, per-vault allowlists.
contract TokenRegistryTest is TestBase {
    address internal admin = address(0xAD);
    address internal stranger = address(0x5757);
    address internal issuer = address(0x1550E);

    TokenRegistry internal registry;
    EquityToken internal nvda;
    EquityToken internal aapl;
    bytes32 internal operatorRole;

    function setUp() public {
        registry = new TokenRegistry(admin);
        operatorRole = registry.OPERATOR_ROLE();
        nvda = new EquityToken("NVIDIA (tokenized)", "NVDA", issuer);
        aapl = new EquityToken("Apple (tokenized)", "AAPL", issuer);
    }

    function _register(string memory symbol, address token) internal {
        vm.prank(admin);
        registry.registerToken(symbol, token);
    }

    function _newToken() internal returns (address) {
        return address(new EquityToken("t", "T", issuer));
    }

    function _expectInvalidSymbol(string memory symbol) internal {
        address token = _newToken();
        vm.expectRevert(abi.encodeWithSelector(ITokenRegistry.InvalidSymbol.selector, symbol));
        vm.prank(admin);
        registry.registerToken(symbol, token);
    }

    function _expectUnauthorized(address who) internal {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, who, operatorRole)
        );
    }

    // ------------------------------------------------------------------ registerToken

    function test_registerToken_mapsBothWaysAndEmits() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit ITokenRegistry.TokenRegistered("NVDA", address(nvda), 18);
        _register("NVDA", address(nvda));
        vm.assertEq(registry.tokenOf("NVDA"), address(nvda), "tokenOf");
        vm.assertEq(registry.symbolOf(address(nvda)), "NVDA", "symbolOf");
        address[] memory list = registry.tokens();
        vm.assertEq(list.length, 1, "tokens length");
        vm.assertEq(list[0], address(nvda), "tokens[0]");
    }

    function test_registerToken_eventCarriesTokenDecimals() public {
        MockUSDC usdc = new MockUSDC(admin);
        vm.expectEmit(true, true, true, true, address(registry));
        emit ITokenRegistry.TokenRegistered("USDC", address(usdc), 6);
        _register("USDC", address(usdc));
    }

    function test_tokens_listsInRegistrationOrder() public {
        _register("NVDA", address(nvda));
        _register("AAPL", address(aapl));
        address[] memory list = registry.tokens();
        vm.assertEq(list.length, 2, "length");
        vm.assertEq(list[0], address(nvda), "first");
        vm.assertEq(list[1], address(aapl), "second");
    }

    function test_lookups_areEmptyForUnknown() public {
        _register("NVDA", address(nvda));
        vm.assertEq(registry.tokenOf("AAPL"), address(0), "unknown symbol");
        vm.assertEq(registry.tokenOf("nvda"), address(0), "lookup is case-sensitive");
        vm.assertEq(registry.symbolOf(address(aapl)), "", "unknown token");
        vm.assertEq(registry.tokens().length, 1, "list");
    }

    function test_registerToken_acceptsDotsDigitsAndElevenChars() public {
        _register("BRK.B", address(nvda));
        vm.assertEq(registry.tokenOf("BRK.B"), address(nvda), "BRK.B");
        address t2 = _newToken();
        _register("ABCDEFGHIJK", t2); // 11 characters, the maximum
        vm.assertEq(registry.tokenOf("ABCDEFGHIJK"), t2, "11 chars");
        address t3 = _newToken();
        _register("0123456789", t3);
        vm.assertEq(registry.symbolOf(t3), "0123456789", "digits");
        address t4 = _newToken();
        _register("X", t4);
        vm.assertEq(registry.tokenOf("X"), t4, "one char");
    }

    function test_registerToken_revertsForEmptySymbol() public {
        _expectInvalidSymbol("");
    }

    function test_registerToken_revertsForTwelveChars() public {
        _expectInvalidSymbol("ABCDEFGHIJKL");
    }

    function test_registerToken_revertsForLowercase() public {
        _expectInvalidSymbol("nvda");
        _expectInvalidSymbol("NVDa");
    }

    function test_registerToken_revertsForDash() public {
        _expectInvalidSymbol("BRK-B");
    }

    function test_registerToken_revertsForSpace() public {
        _expectInvalidSymbol("BRK B");
        _expectInvalidSymbol(" NVDA");
    }

    function test_registerToken_revertsForOtherPunctuationAndNonAscii() public {
        _expectInvalidSymbol("NVDA/");
        _expectInvalidSymbol("NVDA:");
        _expectInvalidSymbol("@NVDA");
        _expectInvalidSymbol("NVDA[");
        _expectInvalidSymbol(unicode"NVDÄ");
        _expectInvalidSymbol(string(abi.encodePacked("NV", bytes1(0), "DA")));
    }

    /// @dev Characters drawn mostly from the valid set, with the near misses around it ('@' and '['
    ///      border A-Z, '/' and ':' border 0-9, '`' and '{' border a-z) and ',', '-', ' ', '_'.
    function testFuzz_registerToken_symbolValidity(bytes32 seed, uint256 len) public {
        bytes memory alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.@[/:`{az,- _";
        len = bound(len, 0, 14);
        bytes memory s = new bytes(len);
        bool valid = len >= 1 && len <= 11;
        for (uint256 i; i < len; ++i) {
            bytes1 c = alphabet[uint8(seed[i]) % alphabet.length];
            s[i] = c;
            if (!((c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == ".")) valid = false;
        }
        address token = _newToken();
        if (!valid) vm.expectRevert(abi.encodeWithSelector(ITokenRegistry.InvalidSymbol.selector, string(s)));
        vm.prank(admin);
        registry.registerToken(string(s), token);
        if (valid) vm.assertEq(registry.tokenOf(string(s)), token, "registered");
    }

    function test_registerToken_revertsWhenSymbolTaken() public {
        _register("NVDA", address(nvda));
        vm.expectRevert(abi.encodeWithSelector(ITokenRegistry.SymbolTaken.selector, "NVDA", address(nvda)));
        vm.prank(admin);
        registry.registerToken("NVDA", address(aapl));
        vm.assertEq(registry.tokenOf("NVDA"), address(nvda), "first registration kept");
    }

    function test_registerToken_revertsWhenTokenAlreadyRegistered() public {
        _register("NVDA", address(nvda));
        vm.expectRevert(abi.encodeWithSelector(ITokenRegistry.TokenAlreadyRegistered.selector, address(nvda)));
        vm.prank(admin);
        registry.registerToken("NVDA2", address(nvda));
        vm.assertEq(registry.tokenOf("NVDA2"), address(0), "second symbol not mapped");
        vm.assertEq(registry.tokens().length, 1, "listed once");
    }

    function test_registerToken_revertsForZeroAddress() public {
        vm.expectRevert(ITokenRegistry.ZeroAddress.selector);
        vm.prank(admin);
        registry.registerToken("NVDA", address(0));
    }

    // ------------------------------------------------------------------ allowlist

    function test_setAllowed_enablesAndDisablesWithEvents() public {
        _register("NVDA", address(nvda));
        vm.assertFalse(registry.isAllowed(1, address(nvda)), "not allowed by default");

        vm.expectEmit(true, true, true, true, address(registry));
        emit ITokenRegistry.TokenAllowed(1, address(nvda), true);
        vm.prank(admin);
        registry.setAllowed(1, address(nvda), true);
        vm.assertTrue(registry.isAllowed(1, address(nvda)), "allowed");

        vm.expectEmit(true, true, true, true, address(registry));
        emit ITokenRegistry.TokenAllowed(1, address(nvda), false);
        vm.prank(admin);
        registry.setAllowed(1, address(nvda), false);
        vm.assertFalse(registry.isAllowed(1, address(nvda)), "disallowed again");
    }

    function test_setAllowed_isPerVaultAndPerToken() public {
        _register("NVDA", address(nvda));
        _register("AAPL", address(aapl));
        vm.startPrank(admin);
        registry.setAllowed(1, address(nvda), true);
        registry.setAllowed(2, address(aapl), true);
        vm.stopPrank();
        vm.assertTrue(registry.isAllowed(1, address(nvda)), "vault 1 NVDA");
        vm.assertFalse(registry.isAllowed(1, address(aapl)), "vault 1 AAPL");
        vm.assertFalse(registry.isAllowed(2, address(nvda)), "vault 2 NVDA");
        vm.assertTrue(registry.isAllowed(2, address(aapl)), "vault 2 AAPL");

        vm.prank(admin);
        registry.setAllowed(1, address(nvda), false);
        vm.assertFalse(registry.isAllowed(1, address(nvda)), "vault 1 NVDA off");
        vm.assertTrue(registry.isAllowed(2, address(aapl)), "vault 2 unaffected");
    }

    function test_setAllowed_revertsForUnknownToken() public {
        vm.expectRevert(abi.encodeWithSelector(ITokenRegistry.UnknownToken.selector, address(nvda)));
        vm.prank(admin);
        registry.setAllowed(1, address(nvda), true);
    }

    function test_isAllowed_falseForUnknownToken() public view {
        vm.assertFalse(registry.isAllowed(1, address(nvda)), "unknown token");
    }

    // ------------------------------------------------------------------ access control

    function test_constructor_grantsAdminAndOperatorRoles() public view {
        vm.assertTrue(registry.hasRole(registry.DEFAULT_ADMIN_ROLE(), admin), "admin");
        vm.assertTrue(registry.hasRole(operatorRole, admin), "operator");
        vm.assertFalse(registry.hasRole(operatorRole, address(this)), "deployer has no role");
    }

    function test_registerToken_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        registry.registerToken("NVDA", address(nvda));
    }

    function test_setAllowed_revertsForNonOperator() public {
        _register("NVDA", address(nvda));
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        registry.setAllowed(1, address(nvda), true);
    }

    function test_grantedOperator_mayRegister() public {
        vm.startPrank(admin);
        registry.grantRole(operatorRole, stranger);
        vm.stopPrank();
        vm.startPrank(stranger);
        registry.registerToken("NVDA", address(nvda));
        registry.setAllowed(3, address(nvda), true);
        vm.stopPrank();
        vm.assertTrue(registry.isAllowed(3, address(nvda)), "allowed by new operator");
    }
}
