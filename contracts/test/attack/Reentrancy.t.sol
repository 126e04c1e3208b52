// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {IVault} from "../../src/interfaces/IVault.sol";
import {HostileFixture} from "./HostileFixture.sol";
import {Reentrant} from "./Reentrant.sol";

/// @notice An ERC-1271 wallet that, asked to check a signature, tries `target` with `payload` first and
///         approves the signature only if that call was refused as a reentry. The router asks it by
///         staticcall, where it cannot record anything, so its answer carries the result.
contract ReentrantSigner {
    bytes4 internal constant MAGIC = 0x1626ba7e; // IERC1271.isValidSignature.selector
    address public immutable target;
    bytes public payload;

    constructor(address target_, bytes memory payload_) {
        target = target_;
        payload = payload_;
    }

    function isValidSignature(bytes32, bytes calldata) external returns (bytes4) {
        (bool ok, bytes memory ret) = target.call(payload);
        bool refusedAsReentry = !ok
            && keccak256(ret)
                == keccak256(abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector));
        return refusedAsReentry ? MAGIC : bytes4(0xffffffff);
    }
}

/// @notice Reentrancy through a hostile venue, USDC, equity token or ERC-1271 signer. The router
///         writes an intent's books (nonce, holding, fired rules) once, after the trade, to save gas,
///         so a call that re-entered mid-trade would see the nonce unused and the rule unfired: the
///         one-nonce / one-fire rules hold only because every state-changing entry point is
///         `nonReentrant`. Each case below re-enters with a call that would do damage, checks it is
///         refused as a reentry, and that the outer call's books are those of one trade. Where the
///         reentered call is valid on its own, it is then made alone and succeeds: the guard, not some
///         other check, refused it. The vault pays only its router, so a hostile part cannot pull
///         from it either. (Views are not guarded: read mid-trade they show the state before it. No
///         contract reads them; off-chain readers read between transactions.)
contract ReentrancyTest is HostileFixture {
    bytes internal reentry = abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);

    // ------------------------------------------------------------------ helpers

    function _assertRefused(Reentrant part, bytes memory expected) internal view {
        vm.assertTrue(part.attempted(), "the hostile part made its call");
        vm.assertFalse(part.succeeded(), "the reentered call was refused");
        vm.assertEq(part.returned(), expected, "refused for the expected reason");
    }

    function _unauthorized(address account, bytes32 role) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, account, role);
    }

    function _executeExitCall(uint256 positionId) internal pure returns (bytes memory) {
        return abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder()));
    }

    // ------------------------------------------------------------------ venue callbacks

    /// @dev Without the guard the replay would pass the nonce check (nonce 0 is not yet stored) and
    ///      buy a second time; the outer open would then overwrite the holding the replay wrote.
    function test_venueBuy_replayOfTheOpenBeingFilled_isRefused() public {
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, exits);
        bytes memory sig = _sign(p, AGENT_KEY);
        hVenue.arm(address(router), abi.encodeCall(ITradeRouter.openPosition, (p, exits, sig)));

        uint256 positionId = router.openPosition(p, exits, sig);

        _assertRefused(hVenue, reentry);
        vm.assertEq(router.nextNonce(agentId), 1, "nonce used once");
        vm.assertEq(router.positionCount(), 1, "one position");
        vm.assertEq(router.agentState(agentId).deployed, 1_000e6, "deployed once");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 1_000e6, "the vault paid once");
        vm.assertEq(nvda.balanceOf(address(vault)), router.position(positionId).size, "the vault holds the position");
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.NonceMismatch.selector, agentId, 1, 0));
        router.openPosition(p, exits, sig);
    }

    /// @dev Two intents the agent signed with the same nonce (say, a retry with other terms): only one
    ///      may ever run, even when the second is slipped in while the first is being filled.
    function test_venueBuy_competingIntentWithTheSameNonce_isRefused() public {
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory first = _openIntent(address(nvda), 1_000e6, exits);
        ITradeRouter.OpenPosition memory second = _openIntent(address(aapl), 2_000e6, exits);
        bytes memory secondSig = _sign(second, AGENT_KEY);
        hVenue.arm(address(router), abi.encodeCall(ITradeRouter.openPosition, (second, exits, secondSig)));

        router.openPosition(first, exits, _sign(first, AGENT_KEY));

        _assertRefused(hVenue, reentry);
        vm.assertEq(router.nextNonce(agentId), 1, "nonce used once");
        vm.assertEq(router.openPositionOf(agentId, address(aapl)), 0, "the second intent opened nothing");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 1_000e6, "the vault paid for one intent");
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.NonceMismatch.selector, agentId, 1, 0));
        router.openPosition(second, exits, secondSig);
    }

    function test_venueSell_replayOfTheReduceBeingFilled_isRefused() public {
        uint256 positionId = _open(1_000e6);
        uint256 size = router.position(positionId).size;
        uint256 half = size / 2;
        uint256 proceeds = venue.quoteSell(address(nvda), half);
        ITradeRouter.ReducePosition memory r = _reduceIntent(positionId, half);
        bytes memory sig = _sign(r, AGENT_KEY);
        hVenue.arm(address(router), abi.encodeCall(ITradeRouter.reducePosition, (r, sig)));

        router.reducePosition(r, sig);

        _assertRefused(hVenue, reentry);
        vm.assertEq(router.nextNonce(agentId), 2, "nonce used once");
        vm.assertEq(router.position(positionId).size, size - half, "sold once");
        vm.assertEq(nvda.balanceOf(address(vault)), size - half, "the vault's tokens match the position");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 1_000e6 + proceeds, "paid for one sale");
    }

    /// @dev Mid-sale the take-profit's fired bit is not yet stored: without the guard the same rule
    ///      would fire again and sell half of the rest.
    function test_venueSell_exitFiredAgainMidSale_isRefused() public {
        uint256 positionId = _openAt(1200);
        uint256 size = router.position(positionId).size;
        uint256 half = size / 2;
        uint256 proceeds = venue.quoteSell(address(nvda), half);
        hVenue.arm(address(router), _executeExitCall(positionId));

        vm.prank(keeper);
        uint256 fired = router.executeExit(positionId, _defaultLadder());

        _assertRefused(hVenue, reentry);
        vm.assertEq(fired, 1, "one rule fired");
        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertEq(v.firedMask, 1, "the take-profit fired, the stop is armed");
        vm.assertEq(v.size, size - half, "half sold, once");
        vm.assertEq(nvda.balanceOf(address(vault)), size - half, "the vault's tokens match the position");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 1_000e6 + proceeds, "paid for one sale");
        (uint256 price,,) = oracle.latestPrice(address(nvda));
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, positionId, price));
        router.executeExit(positionId, _defaultLadder());
    }

    function test_venueBuy_dueExitOfAnotherPosition_isRefusedThenRunsAlone() public {
        uint256 positionId = _openAt(-1200);
        hVenue.arm(address(router), _executeExitCall(positionId));

        _open(address(aapl), 1_000e6, _defaultLadder());

        _assertRefused(hVenue, reentry);
        vm.assertTrue(router.position(positionId).open, "the stop did not fire inside the open");
        vm.prank(keeper);
        router.executeExit(positionId, _defaultLadder());
        vm.assertFalse(router.position(positionId).open, "alone, the stop fires");
    }

    function test_venue_cannotPayItselfFromTheVault() public {
        hVenue.arm(address(vault), abi.encodeCall(IVault.pay, (address(usdc), address(hVenue), VAULT_FUNDS / 2)));
        uint256 positionId = _open(1_000e6);
        _assertRefused(hVenue, _unauthorized(address(hVenue), vault.ROUTER_ROLE()));

        uint256 size = router.position(positionId).size;
        uint256 proceeds = venue.quoteSell(address(nvda), size);
        hVenue.arm(address(vault), abi.encodeCall(IVault.withdrawUsdc, (address(hVenue), VAULT_FUNDS / 2)));
        _reduce(positionId, size);
        _assertRefused(hVenue, _unauthorized(address(hVenue), vault.DEFAULT_ADMIN_ROLE()));

        vm.assertEq(usdc.balanceOf(address(hVenue)), 0, "the venue kept nothing");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 1_000e6 + proceeds, "only the trades moved USDC");
    }

    // ------------------------------------------------------------------ token hooks

    /// @dev The vault's USDC payment to the venue is the open's first transfer.
    function test_usdcTransferHook_dueExitDuringAnOpen_isRefusedThenRunsAlone() public {
        uint256 positionId = _openAt(-1200);
        hUsdc.arm(address(router), _executeExitCall(positionId));

        _open(address(aapl), 1_000e6, _defaultLadder());

        _assertRefused(hUsdc, reentry);
        vm.assertTrue(router.position(positionId).open, "the stop did not fire inside the open");
        vm.assertEq(router.nextNonce(agentId), 2, "two opens, two nonces");
        vm.prank(keeper);
        router.executeExit(positionId, _defaultLadder());
        vm.assertFalse(router.position(positionId).open, "alone, the stop fires");
    }

    /// @dev The stop's sale moves the position's tokens out of the vault first; from that transfer
    ///      the same stop is fired again, while the holding still shows the full size.
    function test_equityTransferHook_exitFiredAgainMidSale_isRefused() public {
        uint256 positionId = _openAt(-1200);
        uint256 size = router.position(positionId).size;
        uint256 proceeds = venue.quoteSell(address(nvda), size);
        hNvda.arm(address(router), _executeExitCall(positionId));

        vm.prank(keeper);
        uint256 fired = router.executeExit(positionId, _defaultLadder());

        _assertRefused(hNvda, reentry);
        vm.assertEq(fired, 1, "the stop fired once");
        vm.assertFalse(router.position(positionId).open, "closed");
        vm.assertEq(nvda.balanceOf(address(vault)), 0, "all tokens sold, once");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 1_000e6 + proceeds, "paid for one sale");
        vm.assertEq(router.agentState(agentId).deployed, 0, "no capital left deployed");
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, positionId));
        router.executeExit(positionId, _defaultLadder());
    }

    /// @dev The venue mints the add's tokens to the vault; from that mint, a reduce the agent signed
    ///      with the same nonce is slipped in.
    function test_equityMintHook_competingReduceWithTheSameNonce_isRefused() public {
        uint256 positionId = _open(1_000e6);
        uint256 size = router.position(positionId).size;
        uint256 added = venue.quoteBuy(address(nvda), 500e6);
        ITradeRouter.AddToPosition memory a = _addIntent(positionId, 500e6);
        ITradeRouter.ReducePosition memory r = _reduceIntent(positionId, size);
        bytes memory reduceSig = _sign(r, AGENT_KEY);
        hNvda.arm(address(router), abi.encodeCall(ITradeRouter.reducePosition, (r, reduceSig)));

        router.addToPosition(a, _sign(a, AGENT_KEY));

        _assertRefused(hNvda, reentry);
        vm.assertEq(router.nextNonce(agentId), 2, "nonce used once");
        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertEq(v.size, size + added, "added, nothing reduced");
        vm.assertEq(v.costBasis, 1_500e6, "cost basis of both buys");
        vm.assertEq(nvda.balanceOf(address(vault)), size + added, "the vault's tokens match the position");
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.NonceMismatch.selector, agentId, 2, 1));
        router.reducePosition(r, reduceSig);
    }

    function test_tokenHooks_cannotPayThemselvesFromTheVault() public {
        uint256 positionId = _open(1_000e6);
        uint256 held = nvda.balanceOf(address(vault));
        hUsdc.arm(address(vault), abi.encodeCall(IVault.pay, (address(usdc), address(hUsdc), VAULT_FUNDS / 2)));
        _open(address(aapl), 1_000e6, _defaultLadder());
        _assertRefused(hUsdc, _unauthorized(address(hUsdc), vault.ROUTER_ROLE()));

        hNvda.arm(address(vault), abi.encodeCall(IVault.pay, (address(nvda), address(hNvda), held)));
        _reduce(positionId, held / 2);
        _assertRefused(hNvda, _unauthorized(address(hNvda), vault.ROUTER_ROLE()));

        vm.assertEq(usdc.balanceOf(address(hUsdc)), 0, "USDC kept nothing");
        vm.assertEq(nvda.balanceOf(address(hNvda)), 0, "the equity token kept nothing");
        vm.assertEq(nvda.balanceOf(address(vault)), held - held / 2, "the vault's tokens match the position");
    }

    // ------------------------------------------------------------------ contract signers

    /// @dev The wallet is asked mid-intent, after the nonce check and before it is stored; it tries to
    ///      fire a due stop. Only its refusal as a reentry makes it approve, so the open going through
    ///      is the proof; the stop then fires alone.
    function test_erc1271Signer_dueExitDuringVerification_isRefusedThenRunsAlone() public {
        uint256 positionId = _openAt(-1200);
        ReentrantSigner wallet = new ReentrantSigner(address(router), _executeExitCall(positionId));
        vm.prank(admin);
        registry.setAgentSigner(agentId, address(wallet));
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 1_000e6, exits);

        router.openPosition(p, exits, _sign(p, AGENT_KEY));

        vm.assertEq(router.nextNonce(agentId), 2, "the wallet approved: its reentry was refused");
        vm.assertTrue(router.position(positionId).open, "the stop did not fire inside the open");
        vm.prank(keeper);
        router.executeExit(positionId, _defaultLadder());
        vm.assertFalse(router.position(positionId).open, "alone, the stop fires");
    }
}
