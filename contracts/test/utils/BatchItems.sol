// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";

/// @notice Builds `executeIntents` / `executeExits` items from the typed intents the single calls take.
library BatchItems {
    function open(ITradeRouter.OpenPosition memory p, ITradeRouter.ExitRule[] memory exits, bytes memory sig)
        internal
        pure
        returns (ITradeRouter.IntentCall memory)
    {
        return ITradeRouter.IntentCall(ITradeRouter.IntentType.Open, abi.encode(p), exits, sig);
    }

    function add(ITradeRouter.AddToPosition memory p, bytes memory sig)
        internal
        pure
        returns (ITradeRouter.IntentCall memory)
    {
        return ITradeRouter.IntentCall(ITradeRouter.IntentType.Add, abi.encode(p), new ITradeRouter.ExitRule[](0), sig);
    }

    function reduce(ITradeRouter.ReducePosition memory p, bytes memory sig)
        internal
        pure
        returns (ITradeRouter.IntentCall memory)
    {
        return
            ITradeRouter.IntentCall(ITradeRouter.IntentType.Reduce, abi.encode(p), new ITradeRouter.ExitRule[](0), sig);
    }

    function ladder(ITradeRouter.UpdateExitLadder memory p, ITradeRouter.ExitRule[] memory exits, bytes memory sig)
        internal
        pure
        returns (ITradeRouter.IntentCall memory)
    {
        return ITradeRouter.IntentCall(ITradeRouter.IntentType.UpdateLadder, abi.encode(p), exits, sig);
    }

    function one(ITradeRouter.IntentCall memory a) internal pure returns (ITradeRouter.IntentCall[] memory l) {
        l = new ITradeRouter.IntentCall[](1);
        l[0] = a;
    }

    function two(ITradeRouter.IntentCall memory a, ITradeRouter.IntentCall memory b)
        internal
        pure
        returns (ITradeRouter.IntentCall[] memory l)
    {
        l = new ITradeRouter.IntentCall[](2);
        l[0] = a;
        l[1] = b;
    }

    function three(ITradeRouter.IntentCall memory a, ITradeRouter.IntentCall memory b, ITradeRouter.IntentCall memory c)
        internal
        pure
        returns (ITradeRouter.IntentCall[] memory l)
    {
        l = new ITradeRouter.IntentCall[](3);
        l[0] = a;
        l[1] = b;
        l[2] = c;
    }

    function exit(uint256 positionId, ITradeRouter.ExitRule[] memory exits)
        internal
        pure
        returns (ITradeRouter.ExitCall memory)
    {
        return ITradeRouter.ExitCall(positionId, exits);
    }
}
