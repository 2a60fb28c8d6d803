// Running build/kernel.wasm on a model machine.
//
//   runKernel(machine, opts?)  boot info (built unless the machine has one),
//                              instantiate, kmain(bootinfo), until the run ends.
//   loadKernel(machine, opts?) instantiate only; call exports one by one
//                              (the test hooks kernel/main.ts exports).
//
// A run ends like the C runtime ends it (boot/common/start.c, boot/rt/wasm-rt.c,
// boot/imports/system.c):
//   sys.exit(N)        -> status N, console ends "hv: exit status=N (name)"
//   wasm trap          -> "hv: trap: wasm <kind>", status 5
//   env.abort          -> "hv: trap: abort: <msg> at <file>:<line>:<col>", status 5
//   kmain returns      -> "hv: kmain returned without ending the run", status 1
// and one way only the model has:
//   machine fault      -> status -1, the description in `faults` (a kernel bug:
//                         #GP/#UD, refused physical access, failed VMREAD/VMWRITE)
// A kernel that loops forever without calling an import hangs the test: run
// suspicious cases in a separate process with a timeout.
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitSignal, Machine, MachineFault } from './machine.ts';
import { buildBootInfo, type BootSpec } from './bootinfo.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KERNEL_WASM = join(REPO_ROOT, 'build', 'kernel.wasm');

export interface RunOptions {
  wasm?: string; // path of the kernel, default build/kernel.wasm
  boot?: BootSpec; // boot information to build when the machine has none
}

export interface RunResult {
  status: number; // sys.exit status, 5 trap, 1 kmain returned, -1 machine fault
  console: string;
  faults: string[];
  trap: string | null; // the trap line's text, when the run ended in a trap
  machine: Machine;
}

export interface CallResult<T = unknown> {
  ended: boolean; // the run ended (exit, trap or fault) during the call
  value?: T; // the export's return value when it returned
  status: number | null;
  faults: string[];
  trap: string | null;
}

export interface Kernel {
  machine: Machine;
  instance: WebAssembly.Instance;
  exports: Record<string, any>;
  call<T = unknown>(name: string, ...args: unknown[]): CallResult<T>;
}

const modules = new Map<string, { mtimeMs: number; size: number; module: WebAssembly.Module }>();

export function kernelModule(path = KERNEL_WASM): WebAssembly.Module {
  const st = statSync(path);
  const hit = modules.get(path);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.module;
  const module = new WebAssembly.Module(readFileSync(path));
  modules.set(path, { mtimeMs: st.mtimeMs, size: st.size, module });
  return module;
}

// wasm2c's trap names (boot/rt/wasm-rt.c wasm_rt_strerror) for V8's messages.
function trapKind(e: Error): string | null {
  const msg = e.message;
  if (e instanceof RangeError && /call stack/i.test(msg)) return 'call stack exhausted';
  if (!(e instanceof WebAssembly.RuntimeError)) return null;
  if (/unreachable/.test(msg)) return 'unreachable executed';
  if (/out of bounds|out-of-bounds/.test(msg)) return 'out-of-bounds linear memory or table access';
  if (/divide by zero|remainder by zero/.test(msg)) return 'integer divide by zero';
  if (/float unrepresentable|invalid conversion/.test(msg)) return 'invalid float-to-integer conversion';
  if (/unrepresentable|overflow/.test(msg)) return 'integer overflow';
  if (/signature|null function|indirect|table index/.test(msg)) return 'bad indirect call';
  return `unknown trap (${msg})`;
}

function lastTrap(m: Machine): string | null {
  const t = [...m.console.matchAll(/^hv: trap: (.*)$/gm)].pop();
  return t ? t[1] : null;
}

// Run fn; turn the ways a run can end into a result.
function guarded<T>(m: Machine, fn: () => T): CallResult<T> {
  const done = (ended: boolean, value?: T): CallResult<T> =>
    ({ ended, value, status: ended ? (m.faults.length ? -1 : m.exitStatus) : null, faults: m.faults, trap: lastTrap(m) });
  try {
    return done(false, fn());
  } catch (e) {
    if (e instanceof ExitSignal || e instanceof MachineFault) return done(true);
    const kind = e instanceof Error ? trapKind(e) : null;
    if (kind === null) throw e; // a bug in the model or the test, not in the kernel
    try {
      m.trap(`wasm ${kind}`);
    } catch (x) {
      if (!(x instanceof ExitSignal)) throw x;
    }
    return done(true);
  }
}

export function loadKernel(machine: Machine, opts: RunOptions = {}): Kernel {
  const module = kernelModule(opts.wasm);
  const imports = machine.imports();
  const missing = WebAssembly.Module.imports(module)
    .filter((i) => i.kind === 'function' && typeof (imports[i.module] as any)?.[i.name] !== 'function')
    .map((i) => `${i.module}.${i.name}`);
  if (missing.length) throw new Error(`tests/model does not implement the kernel's imports: ${missing.join(', ')}`);
  const instance = new WebAssembly.Instance(module, imports);
  const exports = instance.exports as Record<string, any>;
  if (!(exports.memory instanceof WebAssembly.Memory)) throw new Error('kernel.wasm exports no memory');
  machine.kernelMemory = exports.memory;
  return {
    machine,
    instance,
    exports,
    call<T>(name: string, ...args: unknown[]): CallResult<T> {
      const f = exports[name];
      if (typeof f !== 'function') throw new Error(`kernel.wasm has no export ${name}`);
      return guarded(machine, () => f(...args) as T);
    },
  };
}

export function runKernel(machine: Machine, opts: RunOptions = {}): RunResult {
  if (machine.bootInfo === null) buildBootInfo(machine, opts.boot);
  const k = loadKernel(machine, opts);
  const r = k.call('kmain', machine.bootInfo);
  if (!r.ended) {
    // boot/common/start.c: kmain must end the run itself.
    guarded(machine, () => {
      machine.print('hv: kmain returned without ending the run\n');
      machine.exit(1);
    });
  }
  return {
    status: machine.faults.length ? -1 : (machine.exitStatus ?? -1),
    console: machine.console,
    faults: machine.faults,
    trap: lastTrap(machine),
    machine,
  };
}
