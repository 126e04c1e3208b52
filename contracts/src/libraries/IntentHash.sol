// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../interfaces/ITradeRouter.sol";

/// @title IntentHash
/// @notice EIP-712 struct hashes of the intents (SPEC §1.3), in one place so callers write `intent.hash()`.
library IntentHash {
    bytes32 internal constant EXIT_RULE_TYPEHASH = keccak256("ExitRule(uint8 triggerType,int32 triggerBps,uint16 exitBps)");

    bytes32 internal constant OPEN_POSITION_TYPEHASH = keccak256(
        "OpenPosition(uint256 agentId,address vault,address token,uint256 usdcAmount,uint256 minTokenOut,uint16 maxSlippageBps,bytes32 exitsHash,uint256 deadline,uint256 nonce)"
    );

    bytes32 internal constant ADD_TO_POSITION_TYPEHASH = keccak256(
        "AddToPosition(uint256 agentId,uint256 positionId,uint256 usdcAmount,uint256 minTokenOut,uint16 maxSlippageBps,uint256 deadline,uint256 nonce)"
    );

    bytes32 internal constant REDUCE_POSITION_TYPEHASH = keccak256(
        "ReducePosition(uint256 agentId,uint256 positionId,uint256 tokenAmount,uint256 minUsdcOut,uint16 maxSlippageBps,uint256 deadline,uint256 nonce)"
    );

    bytes32 internal constant UPDATE_EXIT_LADDER_TYPEHASH =
        keccak256("UpdateExitLadder(uint256 agentId,uint256 positionId,bytes32 exitsHash,uint256 deadline,uint256 nonce)");

    function hash(ITradeRouter.ExitRule calldata rule) internal pure returns (bytes32) {
        return keccak256(abi.encode(EXIT_RULE_TYPEHASH, rule.triggerType, rule.triggerBps, rule.exitBps));
    }

    /// @notice keccak256 of the concatenated rule hashes: how EIP-712 encodes an `ExitRule[]` member.
    /// @dev    `hash(rule)` for each rule, written out: every exit, open and ladder update hashes its
    ///         ladder, and the generated code (a memory struct encoded per rule, the hashes copied once
    ///         more to be packed) cost ~1.2k per rule. Works in memory past the free pointer, which it
    ///         leaves where it was. A field outside its type (a uint8 / uint16 with high bits, an
    ///         int32 not sign-extended) reverts without data, as the generated calldata checks do.
    function hash(ITradeRouter.ExitRule[] calldata rules) internal pure returns (bytes32 result) {
        bytes32 typeHash = EXIT_RULE_TYPEHASH;
        assembly ("memory-safe") {
            let rule := mload(0x40) // typehash and the rule's three fields: 4 words
            let hashes := add(rule, 0x80)
            let n := rules.length
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let at := add(rules.offset, mul(i, 0x60))
                let triggerType := calldataload(at)
                let triggerBps := calldataload(add(at, 0x20))
                let exitBps := calldataload(add(at, 0x40))
                if or(or(gt(triggerType, 0xff), gt(exitBps, 0xffff)), iszero(eq(triggerBps, signextend(3, triggerBps)))) {
                    revert(0, 0)
                }
                mstore(rule, typeHash)
                mstore(add(rule, 0x20), triggerType)
                mstore(add(rule, 0x40), triggerBps)
                mstore(add(rule, 0x60), exitBps)
                mstore(add(hashes, mul(i, 0x20)), keccak256(rule, 0x80))
            }
            result := keccak256(hashes, mul(n, 0x20))
        }
    }

    function hash(ITradeRouter.OpenPosition calldata p) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                OPEN_POSITION_TYPEHASH,
                p.agentId,
                p.vault,
                p.token,
                p.usdcAmount,
                p.minTokenOut,
                p.maxSlippageBps,
                p.exitsHash,
                p.deadline,
                p.nonce
            )
        );
    }

    function hash(ITradeRouter.AddToPosition calldata p) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                ADD_TO_POSITION_TYPEHASH,
                p.agentId,
                p.positionId,
                p.usdcAmount,
                p.minTokenOut,
                p.maxSlippageBps,
                p.deadline,
                p.nonce
            )
        );
    }

    function hash(ITradeRouter.ReducePosition calldata p) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                REDUCE_POSITION_TYPEHASH,
                p.agentId,
                p.positionId,
                p.tokenAmount,
                p.minUsdcOut,
                p.maxSlippageBps,
                p.deadline,
                p.nonce
            )
        );
    }

    function hash(ITradeRouter.UpdateExitLadder calldata p) internal pure returns (bytes32) {
        return keccak256(abi.encode(UPDATE_EXIT_LADDER_TYPEHASH, p.agentId, p.positionId, p.exitsHash, p.deadline, p.nonce));
    }
}
