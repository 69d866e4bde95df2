//! The plugin's memory allocator on wasm32 (feature `bump-alloc`, on by default).
//!
//! hookhost runs every event in a fresh instance and throws the instance away after it, so
//! freeing memory for reuse buys nothing that the end of the instance does not: this allocator
//! hands out memory by moving a pointer forward and takes back only the most recent allocation
//! (a temporary freed at once, a `Vec` or `String` that grows at the end, in place). It takes
//! its memory in chunks from the standard allocator (the C library's, which serves them from the
//! heap the module starts with, then by `memory.grow`), so the sandbox's memory cap and
//! accounting see it as any other use. A plugin that frees and allocates far more than the
//! memory cap within one event should turn the feature off (`default-features = false`) to get
//! the standard allocator back.
//!
//! Owns only the pointer arithmetic; must not be compiled for any other target. The one place
//! in the SDK with `unsafe`: a global allocator cannot be written without it.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use std::alloc::System;

/// Take at least this much from the standard allocator at a time.
const CHUNK: usize = 64 << 10;
/// The chunks' alignment, or the allocation's own when it asks for more.
const CHUNK_ALIGN: usize = 16;

/// `[next, end)` is free; `last` is where the most recent allocation starts.
pub(crate) struct Bump {
    next: Cell<usize>,
    end: Cell<usize>,
    last: Cell<usize>,
}

// SAFETY: a wasm32 component instance runs one thread; the cells are never shared across threads.
unsafe impl Sync for Bump {}

impl Bump {
    pub(crate) const fn new() -> Self {
        Self { next: Cell::new(0), end: Cell::new(0), last: Cell::new(usize::MAX) }
    }

    /// Make `[next, next + size)` at `align` available, taking a new chunk if needed; its start.
    fn take(&self, size: usize, align: usize) -> Option<usize> {
        let start = self.next.get().checked_add(align - 1)? & !(align - 1);
        let end = start.checked_add(size)?;
        if end <= self.end.get() {
            self.next.set(end);
            self.last.set(start);
            return Some(start);
        }
        // What is left of the current chunk goes with the instance.
        let len = size.checked_add(align)?.max(CHUNK);
        let chunk = Layout::from_size_align(len, CHUNK_ALIGN.max(align)).ok()?;
        // SAFETY: `chunk` has a non-zero size.
        let base = unsafe { System.alloc(chunk) };
        if base.is_null() {
            return None;
        }
        self.next.set(base as usize);
        self.end.set(base as usize + len);
        self.take(size, align)
    }
}

// SAFETY: every block handed out lies in a chunk this allocator took and never gives back, at
// the asked alignment, and no two live blocks overlap: `next` only moves back over the most
// recent block when it is freed or resized in place.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.take(layout.size(), layout.align()) {
            Some(at) => at as *mut u8,
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent allocation goes back; the rest goes with the instance.
        if ptr as usize == self.last.get() && ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
            self.last.set(usize::MAX);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = ptr as usize;
        // The most recent allocation grows or shrinks where it is when there is room.
        if at == self.last.get() && at + layout.size() == self.next.get() {
            if let Some(end) = at.checked_add(new_size).filter(|end| *end <= self.end.get()) {
                self.next.set(end);
                return ptr;
            }
        } else if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller's layout with the new size, as GlobalAlloc::realloc's contract says.
        let new = unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: both blocks are live and at least min(old, new) long; a fresh block never
            // overlaps an old one. The old block is not the most recent any more: it stays.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Bump = Bump::new();
