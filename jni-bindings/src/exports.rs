//! The exported `Java_*` functions: one per `native` method of the Java API. Each one
//! runs inside `EnvUnowned::with_env` (which catches panics) and resolves errors with
//! [`ThrowMapped`], so misuse becomes a Java exception and never crashes the VM.

use std::sync::Once;

use jni::objects::{JByteArray, JByteBuffer, JClass, JLongArray, JObject, JString};
use jni::refs::Reference as _;
use jni::sys::{jboolean, jint, jlong, jstring};
use jni::{Env, EnvUnowned};

use crate::callbacks::JavaCallbacks;
use crate::config::RawConfig;
use crate::error::{Error, Result, ThrowMapped};
use crate::session;

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
) {
    env.with_env(|env| -> Result<()> {
        raw_config(
            env, &mac, &address, prefix_len, &gateway, &hostname, mtu, ipv6, &link,
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
) -> jlong {
    LOGGING.call_once(crate::logging::init);
    env.with_env(|env| -> Result<jlong> {
        if emulator.is_null() {
            return Err(Error::IllegalArgument("emulator is null".into()));
        }
        let config = raw_config(
            env, &mac, &address, prefix_len, &gateway, &hostname, mtu, ipv6, &link,
        )?
        .parse()?;
        let callbacks = JavaCallbacks::new(env, &emulator)?;
        Ok(session::register(config, callbacks))
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeStart`: starts the emulator thread and opens the link.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeStart<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    env.with_env(|_env| -> Result<()> { session::get(handle)?.start() })
        .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeAttachTun`: takes ownership of a TUN fd.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeAttachTun<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    fd: jint,
) {
    env.with_env(|_env| -> Result<()> { session::get(handle)?.attach_tun(fd) })
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

/// `TapEmulator.nativeSendFrameDirect`: a frame in a direct `ByteBuffer`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeSendFrameDirect<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    buffer: JByteBuffer<'l>,
    offset: jint,
    length: jint,
) {
    env.with_env(|env| -> Result<()> {
        let session = session::get(handle)?;
        if buffer.is_null() {
            return Err(Error::IllegalArgument("frame buffer is null".into()));
        }
        let address = env.get_direct_buffer_address(&buffer)?;
        let capacity = env.get_direct_buffer_capacity(&buffer)?;
        let (off, len) = frame_range(offset, length, capacity)?;
        if address.is_null() {
            return Err(Error::IllegalArgument("not a direct buffer".into()));
        }
        // SAFETY: the JVM guarantees `capacity` bytes at `address` while `buffer` is
        // referenced, and off+len <= capacity was checked above.
        let frame = unsafe { std::slice::from_raw_parts(address.add(off), len) }.to_vec();
        session.send_frame(frame)
    })
    .resolve::<ThrowMapped>()
}

/// `TapEmulator.nativeSendFrameArray`: a frame in a `byte[]`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeSendFrameArray<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    array: JByteArray<'l>,
    offset: jint,
    length: jint,
) {
    env.with_env(|env| -> Result<()> {
        let session = session::get(handle)?;
        if array.is_null() {
            return Err(Error::IllegalArgument("frame array is null".into()));
        }
        let (off, len) = frame_range(offset, length, array.len(env)?)?;
        let mut frame = vec![0u8; len];
        // SAFETY: i8 and u8 have the same size and alignment; any bit pattern is valid.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(frame.as_mut_ptr().cast::<i8>(), frame.len()) };
        array.get_region(env, jint::try_from(off).unwrap_or(jint::MAX), bytes)?;
        session.send_frame(frame)
    })
    .resolve::<ThrowMapped>()
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

/// `TapEmulator.nativeClose`: stops and forgets a session (idempotent).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_TapEmulator_nativeClose<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    env.with_env(|_env| -> Result<()> {
        session::close(handle);
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

/// `LinuxTun.nativeOpen`: opens a Linux TUN device (desktop JVMs and tests).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_tapemu_LinuxTun_nativeOpen<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    name: JString<'l>,
) -> jint {
    env.with_env(|env| -> Result<jint> {
        let name = opt_string(env, &name)?
            .ok_or_else(|| Error::IllegalArgument("TUN name is null".into()))?;
        if name.is_empty() || name.len() > 15 {
            return Err(Error::IllegalArgument(format!("bad TUN name {name:?}")));
        }
        crate::tun::open(&name)
    })
    .resolve::<ThrowMapped>()
}
