// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {AgentRegistry} from "../src/AgentRegistry.sol";
import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {IntentHash} from "../src/libraries/IntentHash.sol";
import {PriceOracle} from "../src/PriceOracle.sol";
import {TokenRegistry} from "../src/TokenRegistry.sol";
import {EquityToken} from "../src/tokens/EquityToken.sol";
import {MockUSDC} from "../src/tokens/MockUSDC.sol";
import {TradeRouter} from "../src/TradeRouter.sol";
import {Vault} from "../src/Vault.sol";
import {OraclePriceVenue} from "../src/venues/OraclePriceVenue.sol";
import {Fixture} from "./utils/Fixture.sol";
import {IntentSigner} from "./utils/IntentSigner.sol";

/// @notice Exposes the router's own `IntentHash` library, which hashes calldata structs.
contract IntentHashHarness {
    function hashOpen(ITradeRouter.OpenPosition calldata p) external pure returns (bytes32) {
        return IntentHash.hash(p);
    }

    function hashAdd(ITradeRouter.AddToPosition calldata p) external pure returns (bytes32) {
        return IntentHash.hash(p);
    }

    function hashReduce(ITradeRouter.ReducePosition calldata p) external pure returns (bytes32) {
        return IntentHash.hash(p);
    }

    function hashLadder(ITradeRouter.UpdateExitLadder calldata p) external pure returns (bytes32) {
        return IntentHash.hash(p);
    }

    function hashExits(ITradeRouter.ExitRule[] calldata rules) external pure returns (bytes32) {
        return IntentHash.hash(rules);
    }

    function typehash(string calldata primaryType) external pure returns (bytes32) {
        bytes32 k = keccak256(bytes(primaryType));
        if (k == keccak256("ExitRule")) return IntentHash.EXIT_RULE_TYPEHASH;
        if (k == keccak256("OpenPosition")) return IntentHash.OPEN_POSITION_TYPEHASH;
        if (k == keccak256("AddToPosition")) return IntentHash.ADD_TO_POSITION_TYPEHASH;
        if (k == keccak256("ReducePosition")) return IntentHash.REDUCE_POSITION_TYPEHASH;
        if (k == keccak256("UpdateExitLadder")) return IntentHash.UPDATE_EXIT_LADDER_TYPEHASH;
        revert("no such type");
    }
}

/// @notice The golden EIP-712 vectors of tests/vectors/eip712.json (written by
///         scripts/gen-eip712-vectors from eth-account and `cast wallet sign --data`, never from
///         project code) checked against the router's own `IntentHash`, the test suite's independent
///         `IntentSigner`, OpenZeppelin's ECDSA, forge's signer, and finally a deployed TradeRouter
///         that accepts the file's signatures verbatim.
contract IntentHashVectorsTest is Fixture {
    using MessageHashUtils for bytes32;

    string internal constant VECTORS = "/tests/vectors/eip712.json";
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @dev Anvil's default deployer: its first CREATEs give the addresses the vectors use.
    address internal constant ANVIL_DEPLOYER = 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266;

    string internal json;
    IntentHashHarness internal harness;

    function setUp() public override {
        super.setUp();
        json = vm.readFile(string.concat(vm.projectRoot(), VECTORS));
        harness = new IntentHashHarness();
    }

    // ------------------------------------------------------------------ reading the file

    function _v(uint256 i, string memory key) internal pure returns (string memory) {
        return string.concat(".vectors[", vm.toString(i), "]", key);
    }

    function _has(string memory key) internal view returns (bool) {
        return vm.keyExistsJson(json, key);
    }

    function _vectorCount() internal view returns (uint256 n) {
        while (_has(string.concat(".vectors[", vm.toString(n), "]"))) ++n;
    }

    function _count(string memory arrayKey) internal view returns (uint256 n) {
        while (_has(string.concat(arrayKey, "[", vm.toString(n), "]"))) ++n;
    }

    function _vectorIndex(string memory name) internal view returns (uint256 i) {
        uint256 n = _vectorCount();
        for (; i < n; ++i) {
            if (keccak256(bytes(vm.parseJsonString(json, _v(i, ".name")))) == keccak256(bytes(name))) return i;
        }
        revert(string.concat("vector not in ", VECTORS, ": ", name));
    }

    /// @dev First vector of `primaryType` signed by `signedBy`.
    function _firstVector(string memory primaryType, string memory signedBy) internal view returns (uint256 i) {
        uint256 n = _vectorCount();
        for (; i < n; ++i) {
            if (
                keccak256(bytes(_str(i, ".primaryType"))) == keccak256(bytes(primaryType))
                    && keccak256(bytes(_str(i, ".signedBy"))) == keccak256(bytes(signedBy))
            ) return i;
        }
        revert(string.concat("no ", primaryType, " vector signed by ", signedBy, " in ", VECTORS));
    }

    function _str(uint256 i, string memory key) internal view returns (string memory) {
        return vm.parseJsonString(json, _v(i, key));
    }

    function _u(uint256 i, string memory field) internal view returns (uint256) {
        return vm.parseJsonUint(json, _v(i, string.concat(".fields.", field)));
    }

    function _a(uint256 i, string memory field) internal view returns (address) {
        return vm.parseJsonAddress(json, _v(i, string.concat(".fields.", field)));
    }

    function _b32(uint256 i, string memory field) internal view returns (bytes32) {
        return vm.parseJsonBytes32(json, _v(i, string.concat(".fields.", field)));
    }

    function _rules(string memory arrayKey) internal view returns (ITradeRouter.ExitRule[] memory rules) {
        uint256 n = _count(arrayKey);
        rules = new ITradeRouter.ExitRule[](n);
        for (uint256 j; j < n; ++j) {
            string memory r = string.concat(arrayKey, "[", vm.toString(j), "]");
            uint256 triggerType = vm.parseJsonUint(json, string.concat(r, ".triggerType"));
            int256 triggerBps = vm.parseJsonInt(json, string.concat(r, ".triggerBps"));
            uint256 exitBps = vm.parseJsonUint(json, string.concat(r, ".exitBps"));
            vm.assertLe(triggerType, type(uint8).max, "triggerType fits uint8");
            vm.assertLe(exitBps, type(uint16).max, "exitBps fits uint16");
            vm.assertTrue(triggerBps >= type(int32).min && triggerBps <= type(int32).max, "triggerBps fits int32");
            rules[j] = ITradeRouter.ExitRule({
                triggerType: uint8(triggerType), triggerBps: int32(triggerBps), exitBps: uint16(exitBps)
            });
        }
    }

    function _openOf(uint256 i) internal view returns (ITradeRouter.OpenPosition memory) {
        return ITradeRouter.OpenPosition({
            agentId: _u(i, "agentId"),
            vault: _a(i, "vault"),
            token: _a(i, "token"),
            usdcAmount: _u(i, "usdcAmount"),
            minTokenOut: _u(i, "minTokenOut"),
            maxSlippageBps: _u16(_u(i, "maxSlippageBps")),
            exitsHash: _b32(i, "exitsHash"),
            deadline: _u(i, "deadline"),
            nonce: _u(i, "nonce")
        });
    }

    function _addOf(uint256 i) internal view returns (ITradeRouter.AddToPosition memory) {
        return ITradeRouter.AddToPosition({
            agentId: _u(i, "agentId"),
            positionId: _u(i, "positionId"),
            usdcAmount: _u(i, "usdcAmount"),
            minTokenOut: _u(i, "minTokenOut"),
            maxSlippageBps: _u16(_u(i, "maxSlippageBps")),
            deadline: _u(i, "deadline"),
            nonce: _u(i, "nonce")
        });
    }

    function _reduceOf(uint256 i) internal view returns (ITradeRouter.ReducePosition memory) {
        return ITradeRouter.ReducePosition({
            agentId: _u(i, "agentId"),
            positionId: _u(i, "positionId"),
            tokenAmount: _u(i, "tokenAmount"),
            minUsdcOut: _u(i, "minUsdcOut"),
            maxSlippageBps: _u16(_u(i, "maxSlippageBps")),
            deadline: _u(i, "deadline"),
            nonce: _u(i, "nonce")
        });
    }

    function _ladderOf(uint256 i) internal view returns (ITradeRouter.UpdateExitLadder memory) {
        return ITradeRouter.UpdateExitLadder({
            agentId: _u(i, "agentId"),
            positionId: _u(i, "positionId"),
            exitsHash: _b32(i, "exitsHash"),
            deadline: _u(i, "deadline"),
            nonce: _u(i, "nonce")
        });
    }

    function _u16(uint256 x) internal pure returns (uint16) {
        vm.assertLe(x, type(uint16).max, "fits uint16");
        return uint16(x);
    }

    /// @dev The separator of a domain object in the file (top level, or a vector's typedData.domain).
    function _separatorAt(string memory domainKey) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH,
                keccak256(bytes(vm.parseJsonString(json, string.concat(domainKey, ".name")))),
                keccak256(bytes(vm.parseJsonString(json, string.concat(domainKey, ".version")))),
                vm.parseJsonUint(json, string.concat(domainKey, ".chainId")),
                vm.parseJsonAddress(json, string.concat(domainKey, ".verifyingContract"))
            )
        );
    }

    function _vectorSeparator(uint256 i) internal view returns (bytes32) {
        string memory own = _v(i, ".typedData.domain");
        return _separatorAt(_has(own) ? own : ".domain");
    }

    enum Kind {
        Open,
        Add,
        Reduce,
        Ladder
    }

    function _kind(uint256 i) internal view returns (Kind) {
        bytes32 t = keccak256(bytes(_str(i, ".primaryType")));
        if (t == keccak256("OpenPosition")) return Kind.Open;
        if (t == keccak256("AddToPosition")) return Kind.Add;
        if (t == keccak256("ReducePosition")) return Kind.Reduce;
        if (t == keccak256("UpdateExitLadder")) return Kind.Ladder;
        revert(string.concat("unknown primaryType in ", _str(i, ".name")));
    }

    /// @return byRouter struct hash from the router's IntentHash
    /// @return bySigner struct hash from the suite's independent IntentSigner
    function _structHashes(uint256 i) internal view returns (bytes32 byRouter, bytes32 bySigner) {
        Kind k = _kind(i);
        if (k == Kind.Open) {
            ITradeRouter.OpenPosition memory p = _openOf(i);
            return (harness.hashOpen(p), IntentSigner.structHash(p));
        }
        if (k == Kind.Add) {
            ITradeRouter.AddToPosition memory p = _addOf(i);
            return (harness.hashAdd(p), IntentSigner.structHash(p));
        }
        if (k == Kind.Reduce) {
            ITradeRouter.ReducePosition memory p = _reduceOf(i);
            return (harness.hashReduce(p), IntentSigner.structHash(p));
        }
        ITradeRouter.UpdateExitLadder memory l = _ladderOf(i);
        return (harness.hashLadder(l), IntentSigner.structHash(l));
    }

    // ------------------------------------------------------------------ the file itself

    function test_vectors_fileHasVectorsIncludingCastSigned() public view {
        uint256 n = _vectorCount();
        vm.assertGt(n, 0, "vectors present");
        uint256 cast;
        bool[4] memory kinds;
        for (uint256 i; i < n; ++i) {
            if (keccak256(bytes(_str(i, ".signedBy"))) == keccak256("cast")) ++cast;
            kinds[uint256(_kind(i))] = true;
        }
        vm.assertGt(cast, 0, "at least one vector signed by cast");
        for (uint256 k; k < 4; ++k) {
            vm.assertTrue(kinds[k], "every primary type has a vector");
        }
    }

    function test_domainSeparator_matchesFile() public view {
        bytes32 expected = vm.parseJsonBytes32(json, ".domainSeparator");
        vm.assertEq(_separatorAt(".domain"), expected, "separator from the file's domain");
        vm.assertEq(
            IntentSigner.domainSeparator(
                vm.parseJsonUint(json, ".domain.chainId"), vm.parseJsonAddress(json, ".domain.verifyingContract")
            ),
            expected,
            "IntentSigner's separator"
        );
        vm.assertEq(vm.parseJsonString(json, ".domain.name"), "AlphaGrid TradeRouter", "SPEC 1.2 name");
        vm.assertEq(vm.parseJsonString(json, ".domain.version"), "1", "SPEC 1.2 version");
    }

    function test_typehashes_matchFileAndIntentHash() public view {
        string[6] memory types =
            ["EIP712Domain", "ExitRule", "OpenPosition", "AddToPosition", "ReducePosition", "UpdateExitLadder"];
        for (uint256 t; t < types.length; ++t) {
            bytes32 fromString = keccak256(bytes(vm.parseJsonString(json, string.concat(".typeStrings.", types[t]))));
            bytes32 inFile = vm.parseJsonBytes32(json, string.concat(".typehashes.", types[t]));
            vm.assertEq(fromString, inFile, string.concat("file's typehash of ", types[t]));
            bytes32 ours = t == 0 ? DOMAIN_TYPEHASH : harness.typehash(types[t]);
            vm.assertEq(ours, inFile, string.concat("IntentHash typehash of ", types[t]));
        }
        vm.assertEq(vm.parseJsonBytes32(json, ".exitRuleTypehash"), IntentHash.EXIT_RULE_TYPEHASH, "exitRuleTypehash");
    }

    function test_exitsHashes_matchIntentHash() public view {
        uint256 n = _count(".exitsHashes");
        vm.assertGt(n, 0, "exitsHashes present");
        for (uint256 i; i < n; ++i) {
            string memory base = string.concat(".exitsHashes[", vm.toString(i), "]");
            string memory name = vm.parseJsonString(json, string.concat(base, ".name"));
            ITradeRouter.ExitRule[] memory rules = _rules(string.concat(base, ".rules"));
            bytes32 expected = vm.parseJsonBytes32(json, string.concat(base, ".exitsHash"));
            vm.assertEq(harness.hashExits(rules), expected, string.concat("IntentHash exitsHash: ", name));
            vm.assertEq(IntentSigner.exitsHash(rules), expected, string.concat("IntentSigner exitsHash: ", name));
        }
    }

    /// @dev The router's hand-written ladder hash against the suite's own encoding, on any ladder of
    ///      zero to eight rules with any field values (negative trigger bps included).
    function testFuzz_hashExits_matchesIntentSigner(uint256 seed, uint256 count) public view {
        uint256 n = bound(count, 0, 8);
        ITradeRouter.ExitRule[] memory rules = new ITradeRouter.ExitRule[](n);
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            rules[i] = ITradeRouter.ExitRule({
                triggerType: uint8(r), triggerBps: int32(uint32(r >> 8)), exitBps: uint16(r >> 40)
            });
        }
        vm.assertEq(harness.hashExits(rules), IntentSigner.exitsHash(rules), "same hash");
    }

    /// @dev A rule field outside its type reverts without data (as the generated calldata checks did):
    ///      triggerType past uint8, triggerBps not a sign-extended int32 (2^31, or a high bit), exitBps
    ///      past uint16. Each in the second of two rules.
    function test_hashExits_dirtyFieldRevertsWithoutData() public view {
        bytes memory good = abi.encodeCall(
            IntentHashHarness.hashExits, (_ladder(_takeProfit(1000, 5000), _stopLoss(-1000, 10_000)))
        );
        (bool ok,) = address(harness).staticcall(good);
        vm.assertTrue(ok, "clean ladder hashes");
        // selector, offset, length, rule 0 (3 words), rule 1: triggerType, triggerBps, exitBps
        uint256[4] memory fields = [uint256(5), 6, 6, 7];
        uint256[4] memory dirty = [uint256(0x100), 1 << 31, 1 << 40, 0x10000];
        for (uint256 k; k < 4; ++k) {
            bytes memory bad = bytes.concat(good);
            uint256 at = 4 + 32 * fields[k];
            uint256 value = dirty[k];
            assembly ("memory-safe") {
                mstore(add(add(bad, 0x20), at), value)
            }
            bytes memory reason;
            (ok, reason) = address(harness).staticcall(bad);
            vm.assertFalse(ok, "dirty field reverts");
            vm.assertEq(reason.length, 0, "without data");
        }
    }

    function test_vectors_structHashAndDigestMatchIntentHash() public view {
        uint256 n = _vectorCount();
        for (uint256 i; i < n; ++i) {
            string memory name = _str(i, ".name");
            (bytes32 byRouter, bytes32 bySigner) = _structHashes(i);
            bytes32 structHash = vm.parseJsonBytes32(json, _v(i, ".structHash"));
            vm.assertEq(byRouter, structHash, string.concat("IntentHash structHash: ", name));
            vm.assertEq(bySigner, structHash, string.concat("IntentSigner structHash: ", name));
            bytes32 digest = vm.parseJsonBytes32(json, _v(i, ".digest"));
            vm.assertEq(_vectorSeparator(i).toTypedDataHash(byRouter), digest, string.concat("digest: ", name));
            vm.assertEq(
                IntentSigner.digest(_vectorSeparator(i), bySigner), digest, string.concat("IntentSigner digest: ", name)
            );
        }
    }

    function test_vectors_exitsHashFieldIsHashOfExits() public view {
        uint256 n = _vectorCount();
        uint256 checked;
        for (uint256 i; i < n; ++i) {
            if (!_has(_v(i, ".exits"))) continue;
            ITradeRouter.ExitRule[] memory rules = _rules(_v(i, ".exits"));
            vm.assertEq(harness.hashExits(rules), _b32(i, "exitsHash"), string.concat("exits: ", _str(i, ".name")));
            ++checked;
        }
        vm.assertGt(checked, 0, "some vectors carry their exits");
    }

    function test_vectors_signaturesRecoverSigner() public view {
        uint256 n = _vectorCount();
        for (uint256 i; i < n; ++i) {
            string memory label = string.concat(_str(i, ".name"), " (signed by ", _str(i, ".signedBy"), ")");
            bytes32 digest = vm.parseJsonBytes32(json, _v(i, ".digest"));
            bytes memory signature = vm.parseJsonBytes(json, _v(i, ".signature"));
            address signer = vm.parseJsonAddress(json, _v(i, ".signer"));

            vm.assertEq(signature.length, 65, string.concat("65-byte r||s||v: ", label));
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
            vm.assertEq(uint256(err), uint256(ECDSA.RecoverError.NoError), string.concat("canonical: ", label));
            vm.assertEq(recovered, signer, string.concat("ECDSA recovers signer: ", label));

            (uint8 v, bytes32 r, bytes32 s) = _split(signature);
            vm.assertEq(ecrecover(digest, v, r, s), signer, string.concat("ecrecover: ", label));

            uint256 key = vm.parseJsonUint(json, _v(i, ".signerKey"));
            vm.assertEq(vm.addr(key), signer, string.concat("key is the signer's: ", label));
            // RFC 6979 on both sides: forge's signer must reproduce eth-account's and cast's bytes.
            vm.assertEq(IntentSigner.sign(key, digest), signature, string.concat("vm.sign reproduces: ", label));
        }
    }

    function test_badSignatures_rejectedByECDSA() public view {
        uint256 n = _count(".badSignatures");
        vm.assertGt(n, 0, "badSignatures present");
        for (uint256 i; i < n; ++i) {
            string memory base = string.concat(".badSignatures[", vm.toString(i), "]");
            string memory name = vm.parseJsonString(json, string.concat(base, ".name"));
            (, ECDSA.RecoverError err,) = ECDSA.tryRecover(
                vm.parseJsonBytes32(json, string.concat(base, ".digest")),
                vm.parseJsonBytes(json, string.concat(base, ".signature"))
            );
            vm.assertEq(
                uint256(err),
                uint256(_ozError(vm.parseJsonString(json, string.concat(base, ".ozError")))),
                string.concat("OZ error: ", name)
            );
        }
    }

    function _ozError(string memory name) internal pure returns (ECDSA.RecoverError) {
        bytes32 k = keccak256(bytes(name));
        if (k == keccak256("ECDSAInvalidSignature")) return ECDSA.RecoverError.InvalidSignature;
        if (k == keccak256("ECDSAInvalidSignatureLength")) return ECDSA.RecoverError.InvalidSignatureLength;
        if (k == keccak256("ECDSAInvalidSignatureS")) return ECDSA.RecoverError.InvalidSignatureS;
        revert(string.concat("unknown ozError ", name));
    }

    function _split(bytes memory sig) internal pure returns (uint8 v, bytes32 r, bytes32 s) {
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
    }

    // ------------------------------------------------------------------ a deployed router

    function test_router_domainSeparatorMatchesIndependentEncoder() public view {
        vm.assertEq(
            router.domainSeparator(),
            IntentSigner.domainSeparator(block.chainid, address(router)),
            "router vs IntentSigner"
        );
    }

    /// @dev The fixture's agent signs a vector-shaped open in-test; the router accepts it and reports
    ///      the digest both encoders compute.
    function test_router_acceptsVectorShapedIntentSignedInTest() public {
        uint256 i = _vectorIndex("open_basic");
        ITradeRouter.ExitRule[] memory exits = _rules(_v(i, ".exits"));
        ITradeRouter.OpenPosition memory p = _openOf(i);
        p.agentId = agentId;
        p.vault = address(vault);
        p.token = address(nvda);
        p.deadline = block.timestamp + 5 minutes;
        p.nonce = router.nextNonce(agentId);
        bytes32 digest = _separator().toTypedDataHash(harness.hashOpen(p));

        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.NonceUsed(agentId, 0, ITradeRouter.IntentType.Open, digest);
        uint256 positionId = router.openPosition(p, exits, _sign(p, AGENT_KEY));

        vm.assertEq(router.position(positionId).exitsHash, _b32(i, "exitsHash"), "stored ladder is the vector's");
        vm.assertEq(router.position(positionId).costBasis, p.usdcAmount, "cost basis");
    }

    // ------------------------------------------------------------------ the vectors' own chain

    /// @dev A second system laid out the way Anvil's first deployer lays it out, so that the router,
    ///      the vault and the NVDA token sit at the vectors' addresses.
    struct VectorChain {
        TradeRouter router;
        AgentRegistry registry;
        TokenRegistry tokens;
        PriceOracle oracle;
        OraclePriceVenue venue;
        MockUSDC usdc;
        Vault vault;
        EquityToken nvda;
        EquityToken aapl;
        uint256 vaultId;
        uint256 trackId;
    }

    VectorChain internal vc;

    function _deployVectorChain() internal {
        VectorChain storage c = vc;
        vm.chainId(vm.parseJsonUint(json, ".domain.chainId"));
        vm.startPrank(admin);
        c.usdc = new MockUSDC(admin);
        c.oracle = new PriceOracle(admin);
        // Zero spread: reduce_basic signs maxSlippageBps = 0, which only a fill at the oracle price meets.
        c.venue = new OraclePriceVenue(admin, c.oracle, c.usdc, 0);
        c.registry = new AgentRegistry(admin);
        c.tokens = new TokenRegistry(admin);
        vm.stopPrank();

        // Nonces 0, 1, 2 of Anvil's deployer: the router, the vault and NVDA of the vectors.
        vm.startPrank(ANVIL_DEPLOYER);
        c.router = new TradeRouter(admin, c.registry, c.tokens, c.oracle, c.venue, address(c.usdc), MAX_PRICE_AGE);
        c.vault = new Vault(admin, address(c.usdc));
        c.nvda = new EquityToken("NVIDIA (tokenized)", "NVDA", address(c.venue));
        vm.stopPrank();

        vm.startPrank(admin);
        c.aapl = new EquityToken("Apple (tokenized)", "AAPL", address(c.venue));
        c.vault.grantRole(c.vault.ROUTER_ROLE(), address(c.router));
        c.venue.grantRole(c.venue.TRADER_ROLE(), address(c.router));
        c.usdc.mint(address(c.vault), VAULT_FUNDS);
        c.usdc.mint(address(c.venue), VENUE_LIQUIDITY);
        c.tokens.registerToken("NVDA", address(c.nvda));
        c.tokens.registerToken("AAPL", address(c.aapl));
        c.vaultId = c.registry.registerVault(address(c.vault));
        c.tokens.setAllowed(c.vaultId, address(c.nvda), true);
        c.tokens.setAllowed(c.vaultId, address(c.aapl), true);
        c.trackId = c.registry.setTrack("test", _permissiveTrack());
        vm.stopPrank();
    }

    /// @dev Registers placeholder agents until `signer` can take id `id`.
    function _registerAgentAt(uint256 id, address signer) internal {
        VectorChain storage c = vc;
        vm.startPrank(admin);
        while (c.registry.agentCount() + 1 < id) {
            c.registry.registerAgent(address(0xdead), c.vaultId, c.trackId, ALLOCATION);
        }
        vm.assertEq(c.registry.registerAgent(signer, c.vaultId, c.trackId, ALLOCATION), id, "agent id");
        vm.stopPrank();
    }

    function _setPrices() internal {
        VectorChain storage c = vc;
        vm.startPrank(admin);
        c.oracle.setPrice(address(c.nvda), NVDA_PRICE);
        c.oracle.setPrice(address(c.aapl), AAPL_PRICE);
        vm.stopPrank();
    }

    function test_vectorChain_routerSitsAtVerifyingContractWithFileSeparator() public {
        _deployVectorChain();
        VectorChain storage c = vc;
        vm.assertEq(
            address(c.router), vm.parseJsonAddress(json, ".domain.verifyingContract"), "router at verifyingContract"
        );
        vm.assertEq(c.router.domainSeparator(), vm.parseJsonBytes32(json, ".domainSeparator"), "file separator");
        vm.assertEq(
            c.router.domainSeparator(),
            IntentSigner.domainSeparator(block.chainid, address(c.router)),
            "IntentSigner separator"
        );
    }

    /// @dev open → add → reduce → ladder update of agent 7, each with the signature eth-account wrote
    ///      into the file, relayed unchanged to a router at the vectors' address.
    function test_vectorChain_executesEthAccountSignaturesVerbatim() public {
        _deployVectorChain();
        uint256 iOpen = _vectorIndex("open_basic");
        ITradeRouter.OpenPosition memory open = _openOf(iOpen);
        vm.assertEq(open.vault, address(vc.vault), "vault at the vector's address");
        vm.assertEq(open.token, address(vc.nvda), "NVDA at the vector's address");
        _registerAgentAt(open.agentId, vm.parseJsonAddress(json, _v(iOpen, ".signer")));
        vm.warp(open.deadline - 10 minutes);
        _setPrices();

        uint256 positionId = _relayOpen(iOpen);
        vm.assertEq(positionId, 1, "position 1, as the later vectors assume");
        _relayAdd(_vectorIndex("add_basic"), positionId);
        _relayReduce(_vectorIndex("reduce_basic"), positionId);
        uint256 iLadder = _vectorIndex("ladder_basic");
        _relayLadder(iLadder, positionId);

        ITradeRouter.PositionView memory pos = vc.router.position(positionId);
        vm.assertTrue(pos.open, "still open");
        vm.assertEq(pos.exitsHash, _b32(iLadder, "exitsHash"), "ladder replaced");
        vm.assertEq(vc.router.nextNonce(open.agentId), _u(iLadder, "nonce") + 1, "four nonces used");
    }

    function _relayOpen(uint256 i) internal returns (uint256 positionId) {
        ITradeRouter.OpenPosition memory open = _openOf(i);
        bytes memory fileSig = vm.parseJsonBytes(json, _v(i, ".signature"));
        // In-test signature over the same struct: byte-identical to the file's (RFC 6979).
        bytes32 digest = IntentSigner.digest(vc.router.domainSeparator(), IntentSigner.structHash(open));
        vm.assertEq(digest, _fileDigest(i), "digest on the vector chain");
        vm.assertEq(
            IntentSigner.sign(vm.parseJsonUint(json, _v(i, ".signerKey")), digest), fileSig, "in-test signature"
        );

        vm.expectEmit(true, true, true, true, address(vc.router));
        emit ITradeRouter.NonceUsed(open.agentId, open.nonce, ITradeRouter.IntentType.Open, _fileDigest(i));
        positionId = vc.router.openPosition(open, _rules(_v(i, ".exits")), fileSig);
    }

    function _relayAdd(uint256 i, uint256 positionId) internal {
        ITradeRouter.AddToPosition memory add = _addOf(i);
        vm.assertEq(add.positionId, positionId, "add targets the opened position");
        uint256 sizeBefore = vc.router.position(positionId).size;
        vm.expectEmit(true, true, true, true, address(vc.router));
        emit ITradeRouter.NonceUsed(add.agentId, add.nonce, ITradeRouter.IntentType.Add, _fileDigest(i));
        vc.router.addToPosition(add, vm.parseJsonBytes(json, _v(i, ".signature")));
        vm.assertGe(vc.router.position(positionId).size - sizeBefore, add.minTokenOut, "add filled");
    }

    function _relayReduce(uint256 i, uint256 positionId) internal {
        ITradeRouter.ReducePosition memory reduce = _reduceOf(i);
        vm.assertEq(reduce.positionId, positionId, "reduce targets the opened position");
        uint256 vaultUsdc = vc.usdc.balanceOf(address(vc.vault));
        vm.expectEmit(true, true, true, true, address(vc.router));
        emit ITradeRouter.NonceUsed(reduce.agentId, reduce.nonce, ITradeRouter.IntentType.Reduce, _fileDigest(i));
        vc.router.reducePosition(reduce, vm.parseJsonBytes(json, _v(i, ".signature")));
        vm.assertGe(vc.usdc.balanceOf(address(vc.vault)) - vaultUsdc, reduce.minUsdcOut, "reduce filled");
    }

    function _relayLadder(uint256 i, uint256 positionId) internal {
        ITradeRouter.UpdateExitLadder memory ladder = _ladderOf(i);
        vm.assertEq(ladder.positionId, positionId, "ladder targets the opened position");
        vm.expectEmit(true, true, true, true, address(vc.router));
        emit ITradeRouter.NonceUsed(ladder.agentId, ladder.nonce, ITradeRouter.IntentType.UpdateLadder, _fileDigest(i));
        vc.router.updateExitLadder(ladder, _rules(_v(i, ".exits")), vm.parseJsonBytes(json, _v(i, ".signature")));
    }

    /// @dev The signature `cast wallet sign --data` produced, accepted by the router: the vector's agent
    ///      first spends the nonces before the vector's (open_cast: 0..41) with intents signed in-test,
    ///      then the cast-signed open is relayed unchanged.
    function test_vectorChain_executesCastSignatureVerbatim() public {
        _deployVectorChain();
        VectorChain storage c = vc;
        uint256 iCast = _firstVector("OpenPosition", "cast");
        ITradeRouter.OpenPosition memory open = _openOf(iCast);
        vm.assertEq(open.vault, address(c.vault), "vault at the vector's address");
        vm.assertEq(open.token, address(c.nvda), "NVDA at the vector's address");
        uint256 key = vm.parseJsonUint(json, _v(iCast, ".signerKey"));
        _registerAgentAt(open.agentId, vm.addr(key));

        vm.warp(open.deadline - 10 minutes);
        _setPrices();

        // Nonces before the vector's: an AAPL position and ladder updates on it.
        if (open.nonce > 0) {
            ITradeRouter.ExitRule[] memory ladder = _ladder(_stopLoss(-1000, 10_000));
            ITradeRouter.OpenPosition memory first = ITradeRouter.OpenPosition({
                agentId: open.agentId,
                vault: address(c.vault),
                token: address(c.aapl),
                usdcAmount: 1_000e6,
                minTokenOut: 0,
                maxSlippageBps: 100,
                exitsHash: IntentSigner.exitsHash(ladder),
                deadline: block.timestamp,
                nonce: 0
            });
            uint256 aaplPosition = c.router.openPosition(first, ladder, _signOn(IntentSigner.structHash(first), key));
            for (uint256 nonce = 1; nonce < open.nonce; ++nonce) {
                ladder = _ladder(_stopLoss(-int32(int256(100 + nonce)), 10_000));
                ITradeRouter.UpdateExitLadder memory u = ITradeRouter.UpdateExitLadder({
                    agentId: open.agentId,
                    positionId: aaplPosition,
                    exitsHash: IntentSigner.exitsHash(ladder),
                    deadline: block.timestamp,
                    nonce: nonce
                });
                c.router.updateExitLadder(u, ladder, _signOn(IntentSigner.structHash(u), key));
            }
        }
        vm.assertEq(c.router.nextNonce(open.agentId), open.nonce, "agent at the vector's nonce");

        vm.expectEmit(true, true, true, true, address(c.router));
        emit ITradeRouter.NonceUsed(open.agentId, open.nonce, ITradeRouter.IntentType.Open, _fileDigest(iCast));
        uint256 positionId =
            c.router.openPosition(open, _rules(_v(iCast, ".exits")), vm.parseJsonBytes(json, _v(iCast, ".signature")));
        ITradeRouter.PositionView memory pos = c.router.position(positionId);
        vm.assertTrue(pos.open, "opened");
        vm.assertEq(pos.token, open.token, "NVDA");
        vm.assertGe(pos.size, open.minTokenOut, "signed floor met");
    }

    /// @dev Every bad signature of the file is refused by the router with the matching reason code.
    function test_vectorChain_rejectsBadSignaturesOfTheFile() public {
        _deployVectorChain();
        VectorChain storage c = vc;
        uint256 iOpen = _vectorIndex("open_basic");
        ITradeRouter.OpenPosition memory open = _openOf(iOpen);
        _registerAgentAt(open.agentId, vm.parseJsonAddress(json, _v(iOpen, ".signer")));
        vm.warp(open.deadline - 10 minutes);
        _setPrices();
        ITradeRouter.ExitRule[] memory exits = _rules(_v(iOpen, ".exits"));

        uint256 n = _count(".badSignatures");
        for (uint256 i; i < n; ++i) {
            string memory base = string.concat(".badSignatures[", vm.toString(i), "]");
            vm.assertEq(
                vm.parseJsonBytes32(json, string.concat(base, ".digest")), _fileDigest(iOpen), "bad sig over open_basic"
            );
            ECDSA.RecoverError err = _ozError(vm.parseJsonString(json, string.concat(base, ".ozError")));
            vm.expectRevert(abi.encodeWithSelector(ITradeRouter.SignatureMalformed.selector, uint8(err)));
            c.router.openPosition(open, exits, vm.parseJsonBytes(json, string.concat(base, ".signature")));
        }
        c.router.openPosition(open, exits, vm.parseJsonBytes(json, _v(iOpen, ".signature")));
        vm.assertEq(c.router.nextNonce(open.agentId), 1, "the good one still goes through");
    }

    function _fileDigest(uint256 i) internal view returns (bytes32) {
        return vm.parseJsonBytes32(json, _v(i, ".digest"));
    }

    function _signOn(bytes32 structHash, uint256 key) internal view returns (bytes memory) {
        return IntentSigner.sign(key, IntentSigner.digest(vc.router.domainSeparator(), structHash));
    }
}
