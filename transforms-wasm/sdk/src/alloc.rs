//! A size-class cache in front of the system allocator, for components.
//!
//! A transform allocates and frees many small blocks per message: object entries,
//! strings over 23 bytes, output buffers. Native Rust programs get these from
//! glibc's per-thread cache; in a component they go to `dlmalloc`, which does the
//! full bin search and coalescing every time. [`SizeClassCache`] keeps freed small
//! blocks on one free list per 8-byte size class and hands them out again first, so
//! the common allocation is a few instructions.
//!
//! Freed small blocks are kept for reuse and never handed back to the system
//! allocator, so the memory they hold is bounded by the peak of small allocations.
//! Larger or over-aligned requests go straight to the system allocator.
//!
//! Components are single-threaded, which is what makes the unsynchronised lists
//! sound; [`SizeClassCache`] is therefore `Sync` only on `wasm32` without atomics.
//! Use it from a component crate with
//! `#[global_allocator] static ALLOC: SizeClassCache = SizeClassCache::new();`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Blocks are aligned to this; small classes are multiples of it.
const GRANULE: usize = 8;
/// Blocks up to this size come in classes `GRANULE` bytes apart.
const SMALL: usize = 256;
/// Classes above [`SMALL`] are this far apart.
const MEDIUM_STEP: usize = 64;
/// Largest cached block.
const MAX_CACHED: usize = 2048;
/// Number of size classes.
const CLASSES: usize = SMALL / GRANULE + (MAX_CACHED - SMALL) / MEDIUM_STEP;

/// A global allocator that recycles small blocks through per-size free lists and
/// passes everything else to [`System`].
pub struct SizeClassCache {
    /// Head of each class's free list; a free block stores the next pointer in its
    /// first word.
    heads: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: components run on one thread (wasm32 without the atomics feature has no
// threads), so the free lists are never touched concurrently.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for SizeClassCache {}

impl SizeClassCache {
    /// An empty cache.
    pub const fn new() -> Self {
        Self {
            heads: UnsafeCell::new([ptr::null_mut(); CLASSES]),
        }
    }

    /// The size class serving `layout`, when it is small enough and not over-aligned.
    fn class(layout: Layout) -> Option<usize> {
        let size = layout.size().max(1);
        if size > MAX_CACHED || layout.align() > GRANULE {
            None
        } else if size <= SMALL {
            Some(size.div_ceil(GRANULE) - 1)
        } else {
            Some(SMALL / GRANULE + (size - SMALL).div_ceil(MEDIUM_STEP) - 1)
        }
    }

    /// The size of every block of `class`.
    fn class_size(class: usize) -> usize {
        let small = SMALL / GRANULE;
        if class < small {
            (class + 1) * GRANULE
        } else {
            SMALL + (class + 1 - small) * MEDIUM_STEP
        }
    }

    /// The layout every block of `class` is allocated with from the system.
    fn block_layout(class: usize) -> Layout {
        // Class sizes are at most MAX_CACHED and GRANULE is a power of two, so this
        // layout is always valid.
        match Layout::from_size_align(Self::class_size(class), GRANULE) {
            Ok(layout) => layout,
            Err(_) => unreachable!("size classes are valid layouts"),
        }
    }
}

impl Default for SizeClassCache {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out is either fresh from `System` with a layout at least
// as large and as aligned as requested, or a block of the same class that was freed
// earlier; a block is on at most one list and never handed out twice.
unsafe impl GlobalAlloc for SizeClassCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = Self::class(layout) else {
            // SAFETY: the caller's layout has a non-zero size.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see the Sync impl); `class < CLASSES`.
        unsafe {
            let head = (*self.heads.get())[class];
            if head.is_null() {
                return System.alloc(Self::block_layout(class));
            }
            (*self.heads.get())[class] = head.cast::<*mut u8>().read();
            head
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = Self::class(layout) else {
            // SAFETY: `block` came from `System` with this layout.
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: `block` is at least GRANULE bytes, GRANULE-aligned, and no longer in
        // use, so its first word can hold the list link.
        unsafe {
            let heads = &mut *self.heads.get();
            block.cast::<*mut u8>().write(heads[class]);
            heads[class] = block;
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with this alignment is a valid
        // layout; the blocks are handled per the rules of alloc and dealloc above.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            match (Self::class(layout), Self::class(new_layout)) {
                (None, None) => System.realloc(block, layout, new_size),
                (Some(old), Some(new)) if old == new => block,
                _ => {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_cover_every_cached_size_exactly_once() {
        let mut previous = None;
        for size in 1..=MAX_CACHED {
            let class = SizeClassCache::class(layout(size, 1)).unwrap();
            assert!(class < CLASSES, "size {size}");
            assert!(SizeClassCache::class_size(class) >= size, "size {size}");
            if let Some(previous) = previous {
                assert!(class == previous || class == previous + 1, "size {size}");
            }
            previous = Some(class);
        }
        assert_eq!(previous, Some(CLASSES - 1));
        assert_eq!(SizeClassCache::class(layout(MAX_CACHED + 1, 1)), None);
        assert_eq!(SizeClassCache::class(layout(16, 16)), None, "over-aligned");
    }

    #[test]
    fn freed_blocks_are_reused_by_their_class_only() {
        let cache = SizeClassCache::new();
        unsafe {
            let small = cache.alloc(layout(20, 4));
            cache.dealloc(small, layout(20, 4));
            // Same class (17..=24 bytes): the freed block comes back first.
            let again = cache.alloc(layout(24, 8));
            assert_eq!(again, small);
            // Another class does not take it.
            cache.dealloc(again, layout(24, 8));
            let other = cache.alloc(layout(40, 8));
            assert_ne!(other, small);
            assert_eq!(cache.alloc(layout(17, 1)), small);
            cache.dealloc(small, layout(17, 1));
            cache.dealloc(other, layout(40, 8));
            // Blocks beyond the cached sizes go to the system and back.
            let big = cache.alloc(layout(MAX_CACHED + 1, 8));
            assert!(!big.is_null());
            cache.dealloc(big, layout(MAX_CACHED + 1, 8));
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes_and_the_system() {
        let cache = SizeClassCache::new();
        unsafe {
            let mut size = 3;
            let mut block = cache.alloc(layout(size, 1));
            for i in 0..size {
                block.add(i).write(i as u8);
            }
            for new_size in [5, 8, 9, 200, 300, 2048, 5000, 100_000, 700, 12] {
                block = cache.realloc(block, layout(size, 1), new_size);
                assert!(!block.is_null());
                let kept = size.min(new_size);
                for i in 0..kept {
                    assert_eq!(block.add(i).read(), i as u8, "{size} -> {new_size}");
                }
                for i in kept..new_size {
                    block.add(i).write(i as u8);
                }
                size = new_size;
            }
            cache.dealloc(block, layout(size, 1));
        }
    }
}
