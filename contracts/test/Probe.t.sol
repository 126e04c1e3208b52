// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;
import {Vm} from "./utils/Vm.sol";
import {TestBase} from "./utils/Vm.sol";
contract Emitter { event E(); function f() external { emit E(); revert("x"); } }
contract ProbeTest is TestBase {
    function test_probe() public {
        Emitter e = new Emitter();
        vm.recordLogs();
        (bool ok,) = address(e).call(abi.encodeCall(Emitter.f, ()));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        vm.assertFalse(ok, "reverted");
        vm.assertEq(logs.length, 0, "reverted logs not recorded");
    }
}
