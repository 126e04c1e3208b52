// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice A hostile part's one-shot callback: once armed, the next hook the part runs (a transfer,
///         a venue fill) calls `target` with `payload` and records what came back instead of
///         reverting, so a test can check both that the reentry was refused and that the outer call
///         still finished with consistent books.
abstract contract Reentrant {
    address public target;
    bytes public payload;
    bool public armed;
    bool public attempted;
    bool public succeeded;
    bytes public returned;

    /// @dev Unrestricted: these are test parts, and whoever arms them is the attacker.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
        attempted = false;
        succeeded = false;
        delete returned;
    }

    function _reenter() internal {
        if (!armed) return;
        armed = false; // one shot: the reentered call's own hooks must not recurse
        attempted = true;
        (succeeded, returned) = target.call(payload);
    }
}
