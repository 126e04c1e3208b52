// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {Vm} from "./Vm.sol";

/// @notice An EIP-712 encoder written apart from the router's `IntentHash`, so tests compare two
///         encoders instead of checking one against itself. Type strings are spelled out again here.
library IntentSigner {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function domainSeparator(uint256 chainId, address router) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("AlphaGrid TradeRouter"),
                keccak256("1"),
                chainId,
                router
            )
        );
    }

    function exitsHash(ITradeRouter.ExitRule[] memory rules) internal pure returns (bytes32) {
        bytes memory packed;
        for (uint256 i; i < rules.length; ++i) {
            packed = bytes.concat(
                packed,
                keccak256(
                    abi.encode(
                        keccak256("ExitRule(uint8 triggerType,int32 triggerBps,uint16 exitBps)"),
                        uint256(rules[i].triggerType),
                        int256(rules[i].triggerBps),
                        uint256(rules[i].exitBps)
                    )
                )
            );
        }
        return keccak256(packed);
    }

    function structHash(ITradeRouter.OpenPosition memory p) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    "OpenPosition(uint256 agentId,address vault,address token,uint256 usdcAmount,uint256 minTokenOut,uint16 maxSlippageBps,bytes32 exitsHash,uint256 deadline,uint256 nonce)"
                ),
                abi.encode(p.agentId, p.vault, p.token, p.usdcAmount, p.minTokenOut),
                abi.encode(uint256(p.maxSlippageBps), p.exitsHash, p.deadline, p.nonce)
            )
        );
    }

    function structHash(ITradeRouter.AddToPosition memory p) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    "AddToPosition(uint256 agentId,uint256 positionId,uint256 usdcAmount,uint256 minTokenOut,uint16 maxSlippageBps,uint256 deadline,uint256 nonce)"
                ),
                abi.encode(p.agentId, p.positionId, p.usdcAmount, p.minTokenOut),
                abi.encode(uint256(p.maxSlippageBps), p.deadline, p.nonce)
            )
        );
    }

    function structHash(ITradeRouter.ReducePosition memory p) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    "ReducePosition(uint256 agentId,uint256 positionId,uint256 tokenAmount,uint256 minUsdcOut,uint16 maxSlippageBps,uint256 deadline,uint256 nonce)"
                ),
                abi.encode(p.agentId, p.positionId, p.tokenAmount, p.minUsdcOut),
                abi.encode(uint256(p.maxSlippageBps), p.deadline, p.nonce)
            )
        );
    }

    function structHash(ITradeRouter.UpdateExitLadder memory p) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256("UpdateExitLadder(uint256 agentId,uint256 positionId,bytes32 exitsHash,uint256 deadline,uint256 nonce)"),
                abi.encode(p.agentId, p.positionId, p.exitsHash, p.deadline, p.nonce)
            )
        );
    }

    function digest(bytes32 separator, bytes32 structHash_) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", separator, structHash_));
    }

    function sign(uint256 key, bytes32 digest_) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest_);
        return abi.encodePacked(r, s, v);
    }
}
