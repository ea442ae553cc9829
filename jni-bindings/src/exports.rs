//! The exported `Java_*` functions: one per `native` method of the Java API. Each one
//! runs inside `EnvUnowned::with_env` (which catches panics) and resolves errors with
//! [`ThrowMapped`], so misuse becomes a Java exception and never crashes the VM.

use std::sync::{Arc, Once};
use std::time::Duration;

use jni::objects::{JByteArray, JByteBuffer, JClass, JLongArray, JObject, JString};
use jni::refs::Reference as _;
use jni::sys::{jboolean, jint, jlong, jstring};
use jni::{Env, EnvUnowned};

use crate::callbacks::JavaCallbacks;
use crate::config::RawConfig;
use crate::error::{Error, Result, ThrowMapped};
use crate::session::{self, SessionOptions};

static LOGGING: Once = Once::new();

fn opt_string(env: &Env<'_>, s: &JString<'_>) -> Result<Option<String>> {
    if s.is_null() {
        Ok(None)
    } else {
        Ok(Some(s.try_to_string(env)?))
    }
}

#[allow(clippy::too_many_arguments)]
fn raw_config(
    env: &Env<'_>,
    mac: &JString<'_>,
    address: &JString<'_>,
    prefix_len: jint,
    gateway: &JString<'_>,
    hostname: &JString<'_>,
    mtu: jint,
    ipv6: jboolean,
    link: &JString<'_>,
    remembered_lease: &JString<'_>,
    socket_pair: jboolean,
) -> Result<RawConfig> {
    Ok(RawConfig {
        mac: opt_string(env, mac)?,
        address: opt_string(env, address)?,
        prefix_len,
        gateway: opt_string(env, gateway)?,
        hostname: opt_string(env, hostname)?,
        mtu,
        ipv6,
        link: opt_string(env, link)?,
        remembered_lease: opt_string(env, remembered_lease)?,
        socket_pair,
    })
}

/// `TapEmulator.nativeValidate`: checks a configuration.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeValidate<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    mac: JString<'l>,
    address: JString<'l>,
    prefix_len: jint,
    gateway: JString<'l>,
    hostname: JString<'l>,
    mtu: jint,
    ipv6: jboolean,
    link: JString<'l>,
    remembered_lease: JString<'l>,
    socket_pair: jboolean,
) {
    env.with_env(|env| -> Result<()> {
        raw_config(
            env,
            &mac,
            &address,
            prefix_len,
            &gateway,
            &hostname,
            mtu,
            ipv6,
            &link,
            &remembered_lease,
            socket_pair,
        )?
        .parse()?;
        Ok(())
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeCreate`: validates the configuration and registers a session.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeCreate<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    emulator: JObject<'l>,
    mac: JString<'l>,
    address: JString<'l>,
    prefix_len: jint,
    gateway: JString<'l>,
    hostname: JString<'l>,
    mtu: jint,
    ipv6: jboolean,
    link: JString<'l>,
    remembered_lease: JString<'l>,
    socket_pair: jboolean,
    link_timeout_ms: jint,
    protect_sockets: jboolean,
    batch_frames: jboolean,
    frame_batch: JByteBuffer<'l>,
) -> jlong {
    LOGGING.call_once(crate::logging::init);
    env.with_env(|env| -> Result<jlong> {
        if emulator.is_null() {
            return Err(Error::IllegalArgument("emulator is null".into()));
        }
        let config = raw_config(
            env,
            &mac,
            &address,
            prefix_len,
            &gateway,
            &hostname,
            mtu,
            ipv6,
            &link,
            &remembered_lease,
            socket_pair,
        )?
        .parse()?;
        let link_timeout_ms = u64::try_from(link_timeout_ms)
            .ok()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                Error::IllegalArgument(format!("link timeout {link_timeout_ms} ms is not positive"))
            })?;
        let options = SessionOptions {
            link_timeout: Duration::from_millis(link_timeout_ms),
            protect_sockets,
            batch_frames,
        };
        let callbacks = JavaCallbacks::new(env, &emulator, &frame_batch)?;
        let pair =
            if config.link == crate::config::LinkSpec::SocketPair {
                Some(tapemu::driver::frame_socket_pair().map_err(|e| {
                    Error::IllegalState(format!("cannot create the socket pair: {e}"))
                })?)
            } else {
                None
            };
        Ok(session::register(config, options, callbacks, pair))
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeStart`: starts the emulator thread, which opens the link; returns
/// at once.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeStart<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    env.with_env(|_env| -> Result<()> {
        let session: Arc<session::Session> = session::get(handle)?;
        session.start()
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeAttachTun`: takes ownership of a TUN fd, whatever happens: the
/// caller's fd is closed before anything else (even for a closed emulator).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeAttachTun<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    fd: jint,
) {
    env.with_env(|_env| -> Result<()> {
        let tun = session::take_fd(fd)?;
        session::get(handle)?.attach_tun(tun, fd)
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeDetachTun`: closes the TUN fd.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeDetachTun<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    env.with_env(|_env| -> Result<()> { session::get(handle)?.detach_tun() })
        .resolve::<ThrowMapped>()
}

fn frame_range(offset: jint, length: jint, capacity: usize) -> Result<(usize, usize)> {
    let bad = || {
        Error::IllegalArgument(format!(
            "frame offset {offset} length {length} outside {capacity} bytes"
        ))
    };
    let off = usize::try_from(offset).map_err(|_| bad())?;
    let len = usize::try_from(length).map_err(|_| bad())?;
    match off.checked_add(len) {
        Some(end) if end <= capacity => Ok((off, len)),
        _ => Err(bad()),
    }
}

/// The bytes of a direct `ByteBuffer` from `offset`, `length` long.
///
/// # Safety
/// The slice is valid while `buffer` is referenced and nothing else writes to it: use
/// it within the native call only.
unsafe fn direct_bytes<'b>(
    env: &Env<'_>,
    buffer: &JByteBuffer<'_>,
    offset: jint,
    length: jint,
) -> Result<&'b [u8]> {
    if buffer.is_null() {
        return Err(Error::IllegalArgument("frame buffer is null".into()));
    }
    let address = env.get_direct_buffer_address(buffer)?;
    let capacity = env.get_direct_buffer_capacity(buffer)?;
    let (off, len) = frame_range(offset, length, capacity)?;
    if address.is_null() {
        return Err(Error::IllegalArgument("not a direct buffer".into()));
    }
    // SAFETY: the JVM guarantees `capacity` bytes at `address` while `buffer` is
    // referenced, and off+len <= capacity was checked above.
    Ok(unsafe { std::slice::from_raw_parts(address.add(off), len) })
}

/// The bytes of a `byte[]` from `offset`, `length` long (copied).
fn array_bytes(
    env: &Env<'_>,
    array: &JByteArray<'_>,
    offset: jint,
    length: jint,
) -> Result<Vec<u8>> {
    if array.is_null() {
        return Err(Error::IllegalArgument("frame array is null".into()));
    }
    let (off, len) = frame_range(offset, length, array.len(env)?)?;
    let mut bytes = vec![0u8; len];
    // SAFETY: i8 and u8 have the same size and alignment; any bit pattern is valid.
    let signed =
        unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<i8>(), bytes.len()) };
    array.get_region(env, jint::try_from(off).unwrap_or(jint::MAX), signed)?;
    Ok(bytes)
}

/// `TapEmulator.nativeSendFrameDirect`: a frame in a direct `ByteBuffer`; true if taken.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeSendFrameDirect<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    buffer: JByteBuffer<'l>,
    offset: jint,
    length: jint,
) -> jboolean {
    env.with_env(|env| -> Result<jboolean> {
        let session = session::get(handle)?;
        let sender = session.frame_sender()?;
        // SAFETY: used within this call only.
        let frame = unsafe { direct_bytes(env, &buffer, offset, length) }?;
        Ok(session.offer_frames(&sender, &[frame])? == 1)
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeSendFrameArray`: a frame in a `byte[]`; true if taken.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeSendFrameArray<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    array: JByteArray<'l>,
    offset: jint,
    length: jint,
) -> jboolean {
    env.with_env(|env| -> Result<jboolean> {
        let session = session::get(handle)?;
        let sender = session.frame_sender()?;
        let frame = array_bytes(env, &array, offset, length)?;
        Ok(session.offer_frames(&sender, &[&frame])? == 1)
    })
    .resolve::<ThrowMapped>()
}

/// Offers the length-prefixed frames of a batch (4-byte big-endian length, then the
/// frame) in order until one is not taken; returns the bytes of the batch taken and
/// the number of frames. The whole batch is checked first: a malformed one takes
/// nothing.
fn offer_batch(session: &session::Session, batch: &[u8]) -> Result<(usize, usize)> {
    let prefix = crate::callbacks::BATCH_LENGTH_PREFIX;
    let mut frames = Vec::new();
    let mut at = 0;
    while at < batch.len() {
        let len_bytes: [u8; 4] = batch
            .get(at..at + prefix)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::IllegalArgument(format!("frame batch: a partial length at byte {at}"))
            })?;
        let len = usize::try_from(u32::from_be_bytes(len_bytes)).unwrap_or(usize::MAX);
        let end = (at + prefix).checked_add(len).filter(|&e| e <= batch.len());
        let Some(end) = end else {
            return Err(Error::IllegalArgument(format!(
                "frame batch: a {len}-byte frame at byte {at} runs past the end ({} bytes)",
                batch.len()
            )));
        };
        frames.push((at + prefix, end));
        at = end;
    }
    let sender = session.frame_sender()?;
    let slices: Vec<&[u8]> = frames
        .iter()
        .map(|&(start, end)| &batch[start..end])
        .collect();
    let taken = session.offer_frames(&sender, &slices)?;
    let taken_bytes = taken.checked_sub(1).map_or(0, |last| frames[last].1);
    Ok((taken_bytes, taken))
}

/// `TapEmulator.nativeSendFramesDirect`: a batch of frames in a direct `ByteBuffer`;
/// returns `taken bytes << 32 | taken frames`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeSendFramesDirect<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    buffer: JByteBuffer<'l>,
    offset: jint,
    length: jint,
) -> jlong {
    env.with_env(|env| -> Result<jlong> {
        let session = session::get(handle)?;
        // SAFETY: used within this call only.
        let batch = unsafe { direct_bytes(env, &buffer, offset, length) }?;
        let (bytes, frames) = offer_batch(&session, batch)?;
        Ok(pack_taken(bytes, frames))
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeSendFramesArray`: a batch of frames in a `byte[]`; returns
/// `taken bytes << 32 | taken frames`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeSendFramesArray<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    array: JByteArray<'l>,
    offset: jint,
    length: jint,
) -> jlong {
    env.with_env(|env| -> Result<jlong> {
        let session = session::get(handle)?;
        let batch = array_bytes(env, &array, offset, length)?;
        let (bytes, frames) = offer_batch(&session, &batch)?;
        Ok(pack_taken(bytes, frames))
    })
    .resolve::<ThrowMapped>()
}

/// Bytes and frames taken, in one `long` (both fit 31 bits: a Java buffer's size).
fn pack_taken(bytes: usize, frames: usize) -> jlong {
    let bytes = i64::try_from(bytes).unwrap_or(i64::from(i32::MAX));
    let frames = i64::try_from(frames).unwrap_or(i64::from(i32::MAX));
    (bytes << 32) | frames
}

/// `TapEmulator.nativeStats`: the counters, in `nativeStatNames` order.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeStats<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> JLongArray<'l> {
    env.with_env(|env| -> Result<JLongArray<'l>> {
        let values = session::get(handle)?.stats();
        let array = JLongArray::new(env, values.len())?;
        array.set_region(env, 0, &values)?;
        Ok(array)
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeStatNames`: the counter names, one per line.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeStatNames<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> jstring {
    env.with_env(|env| -> Result<jstring> {
        Ok(env.new_string(session::stat_names().join("\n"))?.into_raw())
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeClose`: stops and forgets a session (idempotent), releasing the
/// lease first only if `release`; returns its last counters, or null for an unknown
/// handle.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeClose<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    release: jboolean,
) -> JLongArray<'l> {
    env.with_env(|env| -> Result<JLongArray<'l>> {
        let Some(values) = session::close(handle, release) else {
            return Ok(JLongArray::null());
        };
        let array = JLongArray::new(env, values.len())?;
        array.set_region(env, 0, &values)?;
        Ok(array)
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeMac`: the emulated host's MAC, `aa:bb:cc:dd:ee:ff`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeMac<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    env.with_env(|env| -> Result<jstring> {
        let mac = session::get(handle)?.mac();
        Ok(env.new_string(mac)?.into_raw())
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativePeerFd`: the app's end of the socket pair, handed out once.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativePeerFd<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jint {
    env.with_env(|_env| -> Result<jint> { session::get(handle)?.take_peer_fd() })
        .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeStoredLease`: the lease in force as stored JSON, or null.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeStoredLease<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> JString<'l> {
    env.with_env(|env| -> Result<JString<'l>> {
        match session::get(handle)?.stored_lease() {
            Some(json) => Ok(env.new_string(json)?),
            None => Ok(JString::null()),
        }
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeNetworkChanged`: reopens the link's sockets, re-announces, confirms
/// the lease.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeNetworkChanged<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    env.with_env(|_env| -> Result<()> { session::get(handle)?.network_changed() })
        .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativePoke`: runs the timers that are due.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativePoke<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    env.with_env(|_env| -> Result<()> { session::get(handle)?.poke() })
        .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeNextTimer`: the next protocol deadline on `CLOCK_BOOTTIME`, in
/// nanoseconds, or -1.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeNextTimer<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jlong {
    env.with_env(|_env| -> Result<jlong> { session::get(handle)?.next_timer() })
        .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeSetLogLevel`: the most verbose level logged, 0 (off) to 5
/// (trace); see [`crate::logging::set_level`].
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeSetLogLevel<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    level: jint,
) {
    env.with_env(|_env| -> Result<()> {
        let level = u8::try_from(level)
            .ok()
            .filter(|&l| l <= 5)
            .ok_or_else(|| Error::IllegalArgument(format!("log level {level} out of range 0-5")))?;
        LOGGING.call_once(crate::logging::init);
        crate::logging::set_level(level);
        Ok(())
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeLiveSessions`: sessions not yet closed.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeLiveSessions<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> jlong {
    env.with_env(|_env| -> Result<jlong> {
        Ok(jlong::try_from(session::live_count()).unwrap_or(jlong::MAX))
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeLiveGlobalRefs`: JNI global references the bridge holds.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeLiveGlobalRefs<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> jlong {
    env.with_env(|_env| -> Result<jlong> {
        Ok(jlong::try_from(crate::callbacks::live_global_refs()).unwrap_or(jlong::MAX))
    })
    .resolve::<ThrowMapped>()
}

/// `LinuxTun.nativeOpen`: opens a Linux TUN device (desktop JVMs and tests), with
/// virtio-net headers and segmentation offloads when `offloads` and the kernel allow.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_LinuxTun_nativeOpen<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    name: JString<'l>,
    offloads: jboolean,
) -> jint {
    env.with_env(|env| -> Result<jint> {
        let name = opt_string(env, &name)?
            .ok_or_else(|| Error::IllegalArgument("TUN name is null".into()))?;
        if name.is_empty() || name.len() > 15 {
            return Err(Error::IllegalArgument(format!("bad TUN name {name:?}")));
        }
        crate::tun::open(&name, offloads)
    })
    .resolve::<ThrowMapped>()
}
