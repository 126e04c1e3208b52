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
    function hash(ITradeRouter.ExitRule[] calldata rules) internal pure returns (bytes32) {
        bytes32[] memory hashes = new bytes32[](rules.length);
        for (uint256 i; i < rules.length; ++i) {
            hashes[i] = hash(rules[i]);
        }
        return keccak256(abi.encodePacked(hashes));
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
