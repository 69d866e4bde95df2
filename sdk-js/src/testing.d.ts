import type { Action, Deliver, Event, Handle, Level } from "./index.js";

export const kv: Map<string, string>;
export const logs: [Level, string][];
export const http: Map<string, [number, string]>;
export const state: { nowMs: bigint; kvWrite: boolean };
export function reset(): void;
export function event(eventType: string, payload: unknown, options?: { isTest?: boolean; id?: string }): Event;
export function run(handle: Handle, event: Event): Action[];
export function delivered(actions: Action[]): (Omit<Deliver, "payload"> & { payload: any })[];
export function requests(actions: Action[]): Deliver[];
