//! Calls from native threads into the Java `TapEmulator`: a global reference to it and
//! method ids looked up once, on the Java thread that created it (so no class lookup
//! ever runs on a native thread, where Android's `FindClass` cannot see app classes).
//!
//! Every call attaches the current thread if needed (permanently: the emulator thread
//! stays attached until it exits) and runs inside its own JNI local frame, so local
//! references never pile up however long the thread runs. Java exceptions thrown by a
//! callback are caught, cleared and logged here; they never unwind into the driver.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use jni::objects::{JClass, JObject};
use jni::signature::{Primitive, ReturnType};
use jni::strings::JNIString;
use jni::JValue;
use jni::{jni_sig, jni_str, AttachConfig, Env, JavaVM};

/// Global references held by live [`JavaCallbacks`] (two each), for leak tests.
static LIVE_GLOBAL_REFS: AtomicUsize = AtomicUsize::new(0);

/// Global references the bridge holds now (two per emulator not yet dropped).
pub fn live_global_refs() -> usize {
    LIVE_GLOBAL_REFS.load(Ordering::Relaxed)
}

/// Local references one callback may create before the frame is popped.
const LOCAL_FRAME_CAPACITY: usize = 8;
use jni::ids::JMethodID;
use jni::refs::Global;

use crate::error::Result;

/// The largest frame the driver hands over (a 65535-byte IP packet and its header).
const MAX_FRAME: usize = 65535 + 14;

/// The Java side of one emulator.
pub struct JavaCallbacks {
    emulator: Global<JObject<'static>>,
    /// Keeps the class, and so the method ids, alive.
    _class: Global<JClass<'static>>,
    on_event: JMethodID,
    on_frame: JMethodID,
    on_frames: JMethodID,
    on_protect: JMethodID,
    /// The emulator's direct `ByteBuffer` for batches of frames (see [`Self::frames`]):
    /// its address and capacity. The emulator object, which we keep, holds the buffer.
    batch: *mut u8,
    batch_capacity: usize,
}

// SAFETY: `batch` points into a direct buffer the JVM keeps alive while the emulator
// (held by `emulator`) references it; only the session thread writes to it, and Java
// reads it only during the upcall that thread makes.
unsafe impl Send for JavaCallbacks {}
// SAFETY: as above; `frames` is called only from the session thread.
unsafe impl Sync for JavaCallbacks {}

/// Bytes of the length in front of each frame of a batch (big-endian).
pub const BATCH_LENGTH_PREFIX: usize = 4;

impl Drop for JavaCallbacks {
    fn drop(&mut self) {
        // The two `Global`s are deleted right after this, when the fields drop.
        LIVE_GLOBAL_REFS.fetch_sub(2, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for JavaCallbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JavaCallbacks").finish_non_exhaustive()
    }
}

impl JavaCallbacks {
    /// Looks up the callback methods of `emulator` (a `TapEmulator`) and keeps a global
    /// reference to it. Must run on a Java thread (inside a native method).
    ///
    /// `batch` is the emulator's direct buffer for batches of frames.
    pub fn new(
        env: &mut Env<'_>,
        emulator: &JObject<'_>,
        batch: &jni::objects::JByteBuffer<'_>,
    ) -> Result<Self> {
        if batch.is_null() {
            return Err(crate::error::Error::IllegalArgument(
                "frame batch buffer is null".into(),
            ));
        }
        let batch_address = env.get_direct_buffer_address(batch)?;
        let batch_capacity = env.get_direct_buffer_capacity(batch)?;
        if batch_address.is_null() || batch_capacity < BATCH_LENGTH_PREFIX + MAX_FRAME {
            return Err(crate::error::Error::IllegalArgument(
                "the frame batch buffer must be direct and hold a largest frame".into(),
            ));
        }
        let class = env.get_object_class(emulator)?;
        let on_event = env.get_method_id(
            &class,
            jni_str!("onNativeEvent"),
            jni_sig!("(Ljava/lang/String;)V"),
        )?;
        let on_frame = env.get_method_id(&class, jni_str!("onNativeFrame"), jni_sig!("([B)V"))?;
        let on_frames = env.get_method_id(&class, jni_str!("onNativeFrames"), jni_sig!("(II)V"))?;
        let on_protect =
            env.get_method_id(&class, jni_str!("onNativeProtect"), jni_sig!("(I)Z"))?;
        let emulator = env.new_global_ref(emulator)?;
        let class = env.new_global_ref(&class)?;
        LIVE_GLOBAL_REFS.fetch_add(2, Ordering::Relaxed);
        Ok(JavaCallbacks {
            emulator,
            _class: class,
            on_event,
            on_frame,
            on_frames,
            on_protect,
            batch: batch_address,
            batch_capacity,
        })
    }

    /// Runs `f` attached to the JVM inside a fresh local frame; logs failures (including
    /// exceptions the Java side let through, which are cleared) and returns `None`.
    fn call<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Env<'_>) -> jni::errors::Result<T>,
    ) -> Option<T> {
        let vm = match JavaVM::singleton() {
            Ok(vm) => vm,
            Err(e) => {
                tracing::error!("no JavaVM for {what}: {e}");
                return None;
            }
        };
        // The JVM sees the thread's name only when it attaches, once per thread: build it
        // for that call alone, not for every frame (the config is built on every call).
        let name = match vm.is_thread_attached() {
            Ok(true) => None,
            _ => Some(JNIString::from(
                std::thread::current().name().unwrap_or("tapemu"),
            )),
        };
        let attached = vm.attach_current_thread_with_config(
            || match &name {
                Some(name) => AttachConfig::new().thread_name(name),
                None => AttachConfig::new(),
            },
            Some(LOCAL_FRAME_CAPACITY),
            f,
        );
        match attached {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("Java callback {what} failed: {e}");
                None
            }
        }
    }

    /// `onNativeEvent(json)`: one event as the JSON object `crate::events` makes.
    pub fn event(&self, json: &str) {
        self.call("onNativeEvent", |env| {
            let json = env.new_string(json)?;
            let args = [JValue::Object(&json).as_jni()];
            // SAFETY: the id was looked up on this object's class with this exact signature.
            unsafe {
                env.call_method_unchecked(
                    &self.emulator,
                    self.on_event,
                    ReturnType::Primitive(Primitive::Void),
                    &args,
                )
            }?;
            Ok(())
        });
    }

    /// `onNativeFrame(byte[])`: a frame for the app's own link (callback mode).
    pub fn frame(&self, frame: &[u8]) {
        self.call("onNativeFrame", |env| {
            let array = env.byte_array_from_slice(frame)?;
            let args = [JValue::Object(&array).as_jni()];
            // SAFETY: the id was looked up on this object's class with this exact signature.
            unsafe {
                env.call_method_unchecked(
                    &self.emulator,
                    self.on_frame,
                    ReturnType::Primitive(Primitive::Void),
                    &args,
                )
            }?;
            Ok(())
        });
    }

    /// `onNativeFrames(length, count)`: frames for the app's own link (callback mode),
    /// as many upcalls as it takes to fit them in the batch buffer. Each frame is its
    /// length (4 bytes, big-endian) then its bytes; the upcall gives the bytes used and
    /// the number of frames.
    pub fn frames<'a>(&self, frames: impl IntoIterator<Item = &'a [u8]>) {
        let mut used = 0;
        let mut count = 0;
        for frame in frames {
            let need = BATCH_LENGTH_PREFIX + frame.len();
            if need > self.batch_capacity {
                tracing::warn!("a {}-byte frame does not fit the batch buffer", frame.len());
                continue;
            }
            if used + need > self.batch_capacity {
                self.flush_frames(used, count);
                used = 0;
                count = 0;
            }
            let len = u32::try_from(frame.len()).unwrap_or(u32::MAX).to_be_bytes();
            // SAFETY: used + need <= capacity bytes at `batch` (checked above), which Java
            // does not read outside the upcall.
            unsafe {
                let at = self.batch.add(used);
                std::ptr::copy_nonoverlapping(len.as_ptr(), at, BATCH_LENGTH_PREFIX);
                std::ptr::copy_nonoverlapping(
                    frame.as_ptr(),
                    at.add(BATCH_LENGTH_PREFIX),
                    frame.len(),
                );
            }
            used += need;
            count += 1;
        }
        if count > 0 {
            self.flush_frames(used, count);
        }
    }

    fn flush_frames(&self, used: usize, count: usize) {
        self.call("onNativeFrames", |env| {
            let args = [
                JValue::Int(i32::try_from(used).unwrap_or(i32::MAX)).as_jni(),
                JValue::Int(i32::try_from(count).unwrap_or(i32::MAX)).as_jni(),
            ];
            // SAFETY: the id was looked up on this object's class with this exact signature.
            unsafe {
                env.call_method_unchecked(
                    &self.emulator,
                    self.on_frames,
                    ReturnType::Primitive(Primitive::Void),
                    &args,
                )
            }?;
            Ok(())
        });
    }

    /// `onNativeProtect(fd)`: true when the app protected the socket.
    pub fn protect(&self, fd: RawFd) -> bool {
        self.call("onNativeProtect", |env| {
            let args = [JValue::Int(fd).as_jni()];
            // SAFETY: the id was looked up on this object's class with this exact signature.
            let r = unsafe {
                env.call_method_unchecked(
                    &self.emulator,
                    self.on_protect,
                    ReturnType::Primitive(Primitive::Boolean),
                    &args,
                )
            }?;
            r.z()
        })
        .unwrap_or(false)
    }
}
