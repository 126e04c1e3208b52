// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {Fixture} from "../utils/Fixture.sol";

/// @notice An ERC-1271 wallet whose check costs real gas (a multisig's or a passkey verifier's
///         would): `work` rounds of hashing, then its owner's ECDSA signature.
contract GasHungrySigner {
    bytes4 internal constant MAGIC = 0x1626ba7e; // IERC1271.isValidSignature.selector
    address public immutable owner;
    uint256 public immutable work;

    constructor(address owner_, uint256 work_) {
        owner = owner_;
        work = work_;
    }

    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        bytes32 h = digest;
        uint256 rounds = work;
        for (uint256 i; i < rounds; ++i) {
            assembly ("memory-safe") {
                mstore(0, h)
                mstore(32, i)
                h := keccak256(0, 64)
            }
        }
        if (h == bytes32(0)) return 0xffffffff; // uses the result, so the rounds are not optimised away
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        return err == ECDSA.RecoverError.NoError && recovered == owner ? MAGIC : bytes4(0xffffffff);
    }
}

/// @notice The 63/64 rule: a relayer (or anyone) may send a router call with just too little gas, so
///         that an inner call (vault, venue, token, oracle, an ERC-1271 signer) runs out while the
///         router keeps 1/64 of its gas. Each case sends one call with the gas swept from far too
///         little to enough — every gas unit around the least that succeeds, coarse steps elsewhere —
///         and checks, for every amount: it either succeeds with every effect (the same books as with
///         ample gas) or reverts with no effect at all (nonce unused, no rule marked fired, every
///         balance unchanged); it succeeds exactly from that least amount up; and a starved call fails
///         as out of gas (empty revert data), never with one of the router's verdicts on the intent,
///         which the relayer would take as final (relayer/errors.py CODE_BY_REVERT).
/// @dev    The router has no try/catch; the one inner call whose failure it does not simply bubble up
///         is the ERC-1271 `isValidSignature` (SignatureChecker reads a failed call as "no"). Starved
///         there, it used to revert `InvalidSigner`; it now stops as out of gas (TradeRouter
///         `_requireSignerHadGas`), which the 1271 case checks.
contract GasStarvationTest is Fixture {
    uint256 internal constant FINE_WINDOW = 160; // every gas unit within this of the least that succeeds
    uint256 internal constant COARSE_FROM = 3_000;
    uint256 internal constant COARSE_STEP = 613; // odd, so the steps land at varied offsets
    uint256 internal constant COARSE_PAST = 40_000;
    uint256 internal constant WALLET_WORK = 3_000; // rounds of hashing: ~0.2M gas

    uint256 internal positionId;

    function setUp() public override {
        super.setUp();
        positionId = _open(1_000e6); // NVDA, [TP +10% 50%, SL −10% 100%]
    }

    // ------------------------------------------------------------------ the sweep

    /// @dev What any call could change: the agent's counters, every position, and the balances of
    ///      everyone who holds the system's tokens.
    function _books() internal view returns (bytes32) {
        bytes memory b = abi.encode(
            router.agentState(agentId),
            router.positionCount(),
            usdc.balanceOf(address(vault)),
            nvda.balanceOf(address(vault)),
            aapl.balanceOf(address(vault)),
            usdc.balanceOf(address(venue)),
            nvda.totalSupply(),
            aapl.totalSupply()
        );
        uint256 count = router.positionCount();
        for (uint256 id = 1; id <= count; ++id) {
            b = bytes.concat(b, abi.encode(router.position(id)));
        }
        return keccak256(b);
    }

    function _try(bytes memory data, uint256 gas_) internal returns (bool ok, bytes memory ret, bytes32 books) {
        uint256 snapshot = vm.snapshotState();
        (ok, ret) = address(router).call{gas: gas_}(data);
        books = _books();
        vm.revertToState(snapshot);
    }

    /// @return least the least gas with which `data` succeeds (as the router call's gas)
    function _sweep(bytes memory data) internal returns (uint256 least) {
        bytes32 before = _books();
        (bool ok, bytes memory ret, bytes32 done) = _try(data, 10_000_000);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        vm.assertTrue(done != before, "with ample gas the call changes the books");

        uint256 lo = 0; // fails
        uint256 hi = 10_000_000; // succeeds
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            (ok,,) = _try(data, mid);
            if (ok) hi = mid;
            else lo = mid;
        }
        least = hi;

        for (uint256 g = least - FINE_WINDOW; g <= least + FINE_WINDOW; ++g) {
            _check(data, g, least, before, done);
        }
        for (uint256 g = COARSE_FROM; g < least + COARSE_PAST; g += COARSE_STEP) {
            _check(data, g, least, before, done);
        }
    }

    function _check(bytes memory data, uint256 g, uint256 least, bytes32 before, bytes32 done) internal {
        (bool ok, bytes memory ret, bytes32 books) = _try(data, g);
        vm.assertEq(ok, g >= least, "succeeds exactly from the least gas up");
        if (ok) {
            vm.assertEq(books, done, "a success has every effect");
        } else {
            vm.assertEq(books, before, "a starved call changes nothing");
            vm.assertEq(ret.length, 0, "a starved call fails as out of gas, not with a verdict");
        }
    }

    // ------------------------------------------------------------------ intents

    function test_open_allOrNothingAtEveryGas() public {
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 1_000e6, exits);
        _sweep(abi.encodeCall(ITradeRouter.openPosition, (p, exits, _sign(p, AGENT_KEY))));
    }

    function test_add_allOrNothingAtEveryGas() public {
        ITradeRouter.AddToPosition memory p = _addIntent(positionId, 500e6);
        _sweep(abi.encodeCall(ITradeRouter.addToPosition, (p, _sign(p, AGENT_KEY))));
    }

    function test_reduce_allOrNothingAtEveryGas() public {
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, router.position(positionId).size / 3);
        _sweep(abi.encodeCall(ITradeRouter.reducePosition, (p, _sign(p, AGENT_KEY))));
    }

    function test_updateLadder_allOrNothingAtEveryGas() public {
        ITradeRouter.ExitRule[] memory exits = _ladder(_takeProfit(1_500, 5_000), _stopLoss(-800, 10_000));
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(positionId, exits);
        _sweep(abi.encodeCall(ITradeRouter.updateExitLadder, (p, exits, _sign(p, AGENT_KEY))));
    }

    /// @dev The wallet's check needs ~0.2M gas, so over a wide band of the sweep the router reaches it
    ///      with too little: the band where a swallowed out-of-gas would read as `InvalidSigner`.
    function test_open_erc1271Signer_starvedWalletIsOutOfGasNotInvalidSigner() public {
        GasHungrySigner wallet = new GasHungrySigner(vm.addr(OTHER_KEY), WALLET_WORK);
        vm.prank(admin);
        registry.setAgentSigner(agentId, address(wallet));
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 1_000e6, exits);
        bytes memory data = abi.encodeCall(ITradeRouter.openPosition, (p, exits, _sign(p, OTHER_KEY)));

        uint256 least = _sweep(data);
        vm.assertGt(least, 150_000, "the wallet's check is most of the call's gas");
    }

    /// @dev The check above must not turn real rejections into out-of-gas: with the gas to finish, a
    ///      wallet that says no is `InvalidSigner`, at every amount from the least that lets it finish.
    function test_open_erc1271Signer_rejectionWithEnoughGasIsInvalidSigner() public {
        GasHungrySigner wallet = new GasHungrySigner(vm.addr(OTHER_KEY), WALLET_WORK);
        vm.prank(admin);
        registry.setAgentSigner(agentId, address(wallet));
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 1_000e6, exits);
        bytes memory data = abi.encodeCall(ITradeRouter.openPosition, (p, exits, _sign(p, AGENT_KEY)));
        bytes memory verdict = abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, agentSigner, address(wallet));
        bytes32 before = _books();

        (bool ok, bytes memory ret,) = _try(data, 10_000_000);
        vm.assertFalse(ok, "rejected");
        vm.assertEq(ret, verdict, "with ample gas: InvalidSigner");

        uint256 lo = 0; // out of gas
        uint256 hi = 10_000_000; // the verdict
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            (, ret,) = _try(data, mid);
            if (ret.length != 0) hi = mid;
            else lo = mid;
        }
        for (uint256 g = hi - FINE_WINDOW; g <= hi + FINE_WINDOW; ++g) {
            bytes32 books;
            (ok, ret, books) = _try(data, g);
            vm.assertFalse(ok, "never accepted");
            vm.assertEq(books, before, "nothing changed");
            vm.assertEq(ret, g >= hi ? verdict : bytes(""), "out of gas below the least, InvalidSigner from it up");
        }
        vm.assertGt(hi, 150_000, "the verdict needs the wallet's gas");
    }

    // ------------------------------------------------------------------ exits
    // A starved exit must not leave a rule marked fired without its sale (or a sale without its mark).

    function test_executeExit_stopLossClose_allOrNothingAtEveryGas() public {
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));
        _sweep(abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder())));
    }

    function test_executeExit_partialTakeProfit_allOrNothingAtEveryGas() public {
        _setPrice(address(nvda), _priceAtPnl(positionId, 1_200));
        _sweep(abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder())));
    }

    /// @dev Two rules fire in one call: the gas can run out between the first sale and the second.
    function test_executeExit_twoRulesInOneCall_allOrNothingAtEveryGas() public {
        ITradeRouter.ExitRule[] memory exits =
            _ladder(_takeProfit(500, 5_000), _takeProfit(1_000, 5_000), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(aapl), 1_000e6, exits);
        _setPrice(address(aapl), _priceAtPnl(id, 1_500));
        _sweep(abi.encodeCall(ITradeRouter.executeExit, (id, exits)));
    }
}
