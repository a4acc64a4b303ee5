//! The `fnhost_alloc` export: where the host writes a call's params.
//!
//! Defined once here, for every guest, and only on wasm32 (natively there is no host to call
//! it). The memory is never freed: each call runs in a fresh instance, which is thrown away
//! afterwards with everything it allocated.

#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn fnhost_alloc(len: i32) -> i32 {
    use std::alloc::{Layout, alloc};

    let Ok(len) = usize::try_from(len) else {
        return 0;
    };
    if len == 0 {
        // A valid, non-null address for zero bytes.
        return core::ptr::NonNull::<u8>::dangling().as_ptr() as usize as i32;
    }
    let Ok(layout) = Layout::from_size_align(len, 1) else {
        return 0;
    };
    // SAFETY: the layout has a non-zero size. A failed allocation (memory.grow refused) returns
    // null, which is the 0 the ABI asks for; pointers fit in i32 on wasm32.
    unsafe { alloc(layout) as usize as i32 }
}
