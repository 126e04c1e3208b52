#!/usr/bin/env node
// A third-party AlphaGrid agent in JavaScript, written from SPEC §2 alone: quote → sign → submit.
//
//   npm install --ignore-scripts        # once, in the repository root (ethers and viem are pinned there)
//   node examples/js/agent.mjs                                    # the demo agent of .alphagrid/deployment.json
//   node examples/js/agent.mjs --library viem --symbol AAPL --usdc 250
//   node examples/js/agent.mjs --api http://127.0.0.1:8000 --agent-id 1 --key 0x… --library ethers
//   node examples/js/agent.mjs --mistakes                         # make the usual mistakes on purpose
//
// It opens a position with an exit ladder, adds to it, replaces the ladder and reduces it, printing
// one JSON line per answer: {"step", "library", "primaryType", "nonce", "status", "response"}
// ("quoteRetries" when a quote had to be fetched again because it was provably stale, see quote()).
// The quote's `typedData` (eth_signTypedData_v4 form) is signed unchanged; ethers and viem only need
// `EIP712Domain` dropped from `types`. Before signing, the agent recomputes the quoted `exitsHash`
// from its own ladder (SPEC §1.3), so it never signs a ladder it did not ask for.
//
// --mistakes opens a position, then submits intents that are wrong on purpose — signed with another
// key, with a stale nonce, and ladders without a take-profit (on a track that requires one) — and
// prints the relayer's answer to each with the code SPEC §2.1 names for it ("expected", "ok").
//
// Exit status: 0 when every step got the answer it should (2xx for trades, the expected code for
// mistakes), 1 otherwise, 2 for bad arguments. Only Node.js 18+ and ethers or viem are needed.

import { readFileSync, existsSync } from "node:fs";
import { parseArgs } from "node:util";

const USDC_DECIMALS = 6;
const EXIT_RULE_TYPE = "ExitRule(uint8 triggerType,int32 triggerBps,uint16 exitBps)";
const EXIT_RULE_FIELDS = [
  { name: "triggerType", type: "uint8" },
  { name: "triggerBps", type: "int32" },
  { name: "exitBps", type: "uint16" },
];
const TRIGGER_TYPES = { StopLoss: 0, TakeProfit: 1 };
const PATHS = {
  OpenPosition: ["trade-intents/quote", "trade-intents"],
  AddToPosition: ["add-intents", "add-intents"],
  ReducePosition: ["reduce-intents", "reduce-intents"],
  UpdateExitLadder: ["exit-ladder-intents", "exit-ladder-intents"],
};

// ------------------------------------------------------------------------------------ arguments

const { values: args } = parseArgs({
  options: {
    api: { type: "string" },
    "agent-id": { type: "string" },
    key: { type: "string" },
    manifest: { type: "string", default: ".alphagrid/deployment.json" },
    library: { type: "string", default: "ethers" },
    symbol: { type: "string", default: "NVDA" },
    usdc: { type: "string", default: "100" },
    "add-usdc": { type: "string", default: "50" },
    mistakes: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

function usage(message) {
  if (message) console.error(message);
  console.error(
    "usage: node examples/js/agent.mjs [--api URL] [--agent-id ID] [--key 0x…] [--manifest PATH]\n" +
      "                                [--library ethers|viem] [--symbol NVDA] [--usdc 100] [--add-usdc 50] [--mistakes]",
  );
  process.exit(message ? 2 : 0);
}

if (args.help) usage();
if (!["ethers", "viem"].includes(args.library)) usage(`--library must be ethers or viem, not ${args.library}`);

const manifest = existsSync(args.manifest) ? JSON.parse(readFileSync(args.manifest, "utf8")) : {};
const demo = manifest.demo?.agents?.[0] ?? {};
const API = (args.api ?? manifest.apiUrl ?? "http://127.0.0.1:8000").replace(/\/$/, "");
const AGENT_ID = args["agent-id"] ?? (demo.agentId !== undefined ? String(demo.agentId) : undefined);
const KEY = args.key ?? demo.signerKey;
if (AGENT_ID === undefined || KEY === undefined) usage("give --agent-id and --key, or run scripts/up first");

// ------------------------------------------------------------------------------------ signers
// Each library gets the quote's typedData as is; the only change is dropping EIP712Domain from
// `types`, which both derive from `domain` themselves.

function withoutDomainType(types) {
  const { EIP712Domain: _unused, ...rest } = types;
  return rest;
}

async function loadLibrary(name) {
  if (name === "ethers") {
    const { Wallet, TypedDataEncoder, keccak256, concat } = await import("ethers");
    return {
      randomKey: () => Wallet.createRandom().privateKey,
      sign: (key, td) =>
        new Wallet(key).signTypedData(td.domain, withoutDomainType(td.types), td.message),
      ruleHash: (rule) =>
        TypedDataEncoder.hashStruct("ExitRule", { ExitRule: EXIT_RULE_FIELDS }, rule),
      keccakConcat: (hashes) => keccak256(concat(hashes)),
    };
  }
  const { keccak256, concat, encodeAbiParameters, toHex } = await import("viem");
  const { privateKeyToAccount, generatePrivateKey } = await import("viem/accounts");
  const typeHash = keccak256(toHex(EXIT_RULE_TYPE));
  return {
    randomKey: () => generatePrivateKey(),
    sign: (key, td) =>
      privateKeyToAccount(key).signTypedData({
        domain: td.domain,
        types: withoutDomainType(td.types),
        primaryType: td.primaryType,
        message: td.message,
      }),
    // SPEC §1.3 literally: keccak256(abi.encode(typeHash, triggerType, triggerBps, exitBps)).
    ruleHash: (rule) =>
      keccak256(
        encodeAbiParameters(
          [{ type: "bytes32" }, { type: "uint8" }, { type: "int32" }, { type: "uint16" }],
          [typeHash, rule.triggerType, rule.triggerBps, rule.exitBps],
        ),
      ),
    keccakConcat: (hashes) => keccak256(concat(hashes)),
  };
}

// ------------------------------------------------------------------------------------ HTTP

async function http(method, path, { query, body } = {}) {
  const url = new URL(API + path);
  for (const [k, v] of Object.entries(query ?? {})) {
    url.searchParams.set(k, typeof v === "string" ? v : JSON.stringify(v));
  }
  const res = await fetch(url, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json };
}

// ------------------------------------------------------------------------------------ units

/** Base units (decimal string of an integer) → human decimal string, e.g. ("1500000", 6) → "1.5". */
function human(base, decimals) {
  const value = BigInt(base);
  const unit = 10n ** BigInt(decimals);
  const whole = value / unit;
  const frac = (value % unit).toString().padStart(decimals, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

/** Human decimal string → base units as a BigInt. */
function baseUnits(amount, decimals) {
  const [whole, frac = ""] = amount.split(".");
  return BigInt(whole) * 10n ** BigInt(decimals) + BigInt((frac + "0".repeat(decimals)).slice(0, decimals) || "0");
}

// ------------------------------------------------------------------------------------ the agent

class Agent {
  constructor(lib, libraryName) {
    this.lib = lib;
    this.libraryName = libraryName;
    this.failures = 0;
    this.known = new Set(); // positions a 2xx answer has named
    this.lastNonce = -1; // the highest nonce a 2xx answer has accepted
  }

  async setup() {
    const agent = await http("GET", `/agents/${AGENT_ID}`);
    if (agent.status !== 200) throw new Error(`GET /agents/${AGENT_ID}: ${agent.status} ${JSON.stringify(agent.json)}`);
    this.track = agent.json.track;
    const tokens = await http("GET", `/vaults/${agent.json.vaultId}/tokens`);
    if (tokens.status !== 200) throw new Error(`GET vault tokens: ${tokens.status} ${JSON.stringify(tokens.json)}`);
    this.decimals = Object.fromEntries(tokens.json.tokens.map((t) => [t.symbol, t.decimals]));
  }

  /** A ladder within the track's bounds: a take-profit on half, then a stop-loss on the rest. */
  ladder({ takeProfit = 1000, stopLoss = -500 } = {}) {
    const l = this.track.limits;
    const stop = { triggerType: "StopLoss", triggerBps: Math.max(stopLoss, -l.maxStopLossBps), exitBps: 10000 };
    const tp = Math.min(Math.max(takeProfit, l.minTakeProfitBps), l.maxTakeProfitBps);
    return [{ triggerType: "TakeProfit", triggerBps: tp, exitBps: 5000 }, stop];
  }

  exitsHash(exits) {
    const hashes = exits.map((r) =>
      this.lib.ruleHash({ triggerType: TRIGGER_TYPES[r.triggerType], triggerBps: r.triggerBps, exitBps: r.exitBps }),
    );
    return this.lib.keccakConcat(hashes);
  }

  async quote(primaryType, query) {
    let q = await http("GET", `/agents/${AGENT_ID}/${PATHS[primaryType][0]}`, { query });
    // The relayer answers 201 once the transaction is mined, but its view of the chain can trail that
    // by a poll: a position a 201 just named may not be quotable yet, and the quoted nonce may be one
    // a 201 just confirmed (a relayer bug, not our mistake). Such a quote is provably stale: re-quote
    // briefly, and say so in the output ("quoteRetries").
    q.retries = 0;
    const until = Date.now() + 3000;
    const lagging = () =>
      (q.status === 404 && q.json.code === "position_not_found" && this.known.has(String(query.positionId))) ||
      (q.status === 200 && q.json.nonce <= this.lastNonce);
    while (lagging() && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const retries = q.retries + 1;
      q = await http("GET", `/agents/${AGENT_ID}/${PATHS[primaryType][0]}`, { query });
      q.retries = retries;
    }
    if (q.status !== 200) return q;
    const td = q.json.typedData;
    // Sign only what we asked for: our agent, the quoted nonce, our ladder's hash.
    const problems = [];
    if (td.primaryType !== primaryType) problems.push(`primaryType ${td.primaryType}`);
    if (String(td.message.agentId) !== String(AGENT_ID)) problems.push(`agentId ${td.message.agentId}`);
    if (Number(td.message.nonce) !== q.json.nonce) problems.push(`nonce ${td.message.nonce} vs ${q.json.nonce}`);
    if (query.exits && td.message.exitsHash.toLowerCase() !== this.exitsHash(query.exits).toLowerCase()) {
      problems.push(`exitsHash ${td.message.exitsHash}, ours ${this.exitsHash(query.exits)}`);
    }
    if (problems.length) throw new Error(`refusing to sign a quote that differs from the request: ${problems.join("; ")}`);
    return q;
  }

  /** The submit body: the signed struct in human units, symbol instead of addresses (SPEC §2.3). */
  body(q, exits, signature) {
    const m = q.typedData.message;
    const dec = this.decimals[q.symbol];
    const common = { deadline: Number(m.deadline), nonce: Number(m.nonce), signature };
    switch (q.typedData.primaryType) {
      case "OpenPosition":
        return {
          symbol: q.symbol,
          usdcAmount: human(m.usdcAmount, USDC_DECIMALS),
          minTokenOut: human(m.minTokenOut, dec),
          maxSlippageBps: Number(m.maxSlippageBps),
          exits,
          ...common,
        };
      case "AddToPosition":
        return {
          positionId: String(m.positionId),
          usdcAmount: human(m.usdcAmount, USDC_DECIMALS),
          minTokenOut: human(m.minTokenOut, dec),
          maxSlippageBps: Number(m.maxSlippageBps),
          ...common,
        };
      case "ReducePosition":
        return {
          positionId: String(m.positionId),
          tokenAmount: human(m.tokenAmount, dec),
          minUsdcOut: human(m.minUsdcOut, USDC_DECIMALS),
          maxSlippageBps: Number(m.maxSlippageBps),
          ...common,
        };
      default:
        return { positionId: String(m.positionId), exits, ...common };
    }
  }

  report(line) {
    console.log(JSON.stringify({ library: this.libraryName, ...line }));
  }

  /**
   * Quote, sign and submit one intent. `tamper(typedData)` may change what is signed (for the
   * mistakes); `key` signs instead of the agent's key. Prints and returns the submit's answer.
   */
  async trade(step, primaryType, query, { key = KEY, tamper, expected } = {}) {
    const q = await this.quote(primaryType, query);
    if (q.status !== 200) {
      this.report({
        step, primaryType, phase: "quote", status: q.status, quoteRetries: q.retries, response: q.json, expected, ok: false,
      });
      this.failures += 1;
      return q;
    }
    const typedData = structuredClone(q.json.typedData);
    if (tamper) tamper(typedData);
    const signature = await this.lib.sign(key, typedData);
    const body = this.body({ ...q.json, typedData }, query.exits, signature);
    const r = await http("POST", `/agents/${AGENT_ID}/${PATHS[primaryType][1]}`, { body });
    const failedChecks = q.json.checks.filter((c) => !c.ok).map((c) => c.check);
    const ok = expected === undefined ? r.status >= 200 && r.status < 300 : r.json.code === expected;
    if (r.status >= 200 && r.status < 300) {
      if (r.json.positionId != null) this.known.add(String(r.json.positionId));
      this.lastNonce = Math.max(this.lastNonce, Number(r.json.nonce));
    }
    if (!ok) this.failures += 1;
    this.report({
      step,
      primaryType,
      nonce: body.nonce,
      status: r.status,
      code: r.json.code,
      ...(expected !== undefined ? { expected } : {}),
      ok,
      ...(q.retries ? { quoteRetries: q.retries } : {}),
      ...(failedChecks.length ? { failedChecks } : {}),
      response: r.json,
    });
    if (!ok && r.status === 401) {
      // SPEC §2.5: show what the relayer rebuilt, to tell which side encoded differently.
      const v = await http("POST", `/agents/${AGENT_ID}/intents/verify`, { body: { ...body, primaryType } });
      this.report({ step: `${step}:verify`, primaryType, status: v.status, response: v.json, signedTypedData: typedData });
    }
    return r;
  }

  async open() {
    const exits = this.ladder();
    const r = await this.trade("open", "OpenPosition", { symbol: args.symbol, usdcAmount: args.usdc, exits });
    if (r.status < 200 || r.status >= 300) throw new Error("open failed");
    return r.json.positionId;
  }

  async run() {
    const positionId = await this.open();
    await this.trade("add", "AddToPosition", { positionId, usdcAmount: args["add-usdc"] });
    await this.trade("ladder", "UpdateExitLadder", {
      positionId,
      exits: this.ladder({ takeProfit: 2000, stopLoss: -1000 }),
    });
    // Reduce half of what the position holds now.
    const p = await http("GET", `/agents/${AGENT_ID}/positions/${positionId}`);
    const dec = this.decimals[args.symbol];
    const half = human((baseUnits(p.json.size, dec) / 2n).toString(), dec);
    await this.trade("reduce", "ReducePosition", { positionId, tokenAmount: half });
  }

  async runMistakes() {
    const positionId = await this.open();
    // 1. Signed by a key that is not the agent's registered signer.
    await this.trade(
      "mistake:wrong-key",
      "AddToPosition",
      { positionId, usdcAmount: args["add-usdc"] },
      { key: this.lib.randomKey(), expected: "invalid_signature" },
    );
    // 2. A nonce that was already used (the open consumed it): signed correctly, but stale.
    await this.trade(
      "mistake:stale-nonce",
      "AddToPosition",
      { positionId, usdcAmount: args["add-usdc"] },
      {
        tamper: (td) => {
          td.message.nonce = String(Number(td.message.nonce) - 1);
        },
        expected: "nonce_mismatch",
      },
    );
    // 3. Ladders with only a stop-loss, on a track that requires a take-profit too.
    if (this.track.limits.requireTakeProfit) {
      const stopOnly = [{ triggerType: "StopLoss", triggerBps: -500, exitBps: 10000 }];
      await this.trade(
        "mistake:no-take-profit-update",
        "UpdateExitLadder",
        { positionId, exits: stopOnly },
        { expected: "exit_ladder_invalid" },
      );
      // A token the agent holds no position in, so that the ladder is the only thing wrong.
      const held = await http("GET", `/agents/${AGENT_ID}/positions`, { query: { status: "open" } });
      const symbols = new Set(held.json.positions.map((p) => p.symbol));
      const other = Object.keys(this.decimals).find((s) => !symbols.has(s));
      if (other === undefined) return;
      await this.trade(
        "mistake:no-take-profit-open",
        "OpenPosition",
        { symbol: other, usdcAmount: args.usdc, exits: stopOnly },
        { expected: "exit_ladder_invalid" },
      );
    }
  }
}

const lib = await loadLibrary(args.library);
const agent = new Agent(lib, args.library);
try {
  await agent.setup();
  if (args.mistakes) await agent.runMistakes();
  else await agent.run();
} catch (err) {
  console.error(`${args.library} agent: ${err.message}`);
  process.exit(1);
}
process.exit(agent.failures ? 1 : 0);
