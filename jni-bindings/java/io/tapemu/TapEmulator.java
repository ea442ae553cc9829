package io.tapemu;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * An emulated Ethernet host between a TUN fd (the {@code VpnService} interface) and a layer-2
 * link: it answers ARP, resolves neighbours, gets an address by DHCP and adds or strips
 * Ethernet headers.
 *
 * <p>Life cycle: construct (validates the configuration), {@link #start()} (returns at once),
 * wait for {@link TapListener#onLeaseAcquired} (or {@link TapListener#onStopped} with the
 * reason the link could not be set up), {@link #attachTun(int)}, and finally {@link #close()}
 * (releases the lease and stops; idempotent) or {@link #close(boolean) close(false)} (keeps it
 * for the next run). On a lease change, establish a new interface and attach its fd: the old
 * one is closed.
 *
 * <p>A phone's life: call {@link #networkChanged()} when the underlying network changes (from a
 * {@code ConnectivityManager.NetworkCallback}); store {@link #mac()} and {@link #storedLease()}
 * and give them back through {@link TapConfig.Builder#mac(String)} and
 * {@link TapConfig.Builder#rememberedLease(String)} to keep the address across restarts; see
 * {@link #nextTimerElapsedRealtimeNanos()} for timers during sleep.
 *
 * <p>Callback mode moves frames in batches both ways: see {@link TapListener#onFrames} for the
 * layout, {@link #sendFrames(ByteBuffer)} for the way in and its backpressure.
 *
 * <p>All methods are thread-safe; see the {@linkplain io.tapemu package documentation} for
 * which thread calls the listener. Methods other than {@link #close()}, {@link #isClosed()}
 * and {@link #stats()} throw {@link IllegalStateException} once the emulator is closed;
 * {@link #stats()} then returns the last counters.
 *
 * <p>Always {@link #close()} an emulator: a started one owns a native thread attached to the
 * JVM (which keeps a desktop JVM from exiting normally) and its native state is not reclaimed
 * by garbage collection.
 *
 * <p>The native library {@code tapemu_jni} is loaded with {@link System#loadLibrary} when this
 * class initialises.
 */
public final class TapEmulator implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger("tapemu");
    /** Bytes of the buffer that carries batches of frames to the listener. */
    static final int FRAME_BATCH_CAPACITY = 256 * 1024;
    private static volatile String[] statNames;

    static {
        System.loadLibrary("tapemu_jni");
    }

    private final TapListener listener;
    /** Whether the listener takes whole batches; if not, frames go to its onFrame one by one. */
    private final boolean listenerTakesBatches;
    private final TapConfig config;
    private final AtomicLong listenerErrors = new AtomicLong();
    /** Native session id; 0 once closed. Never held across a native call: no Java lock. */
    private final AtomicLong handle = new AtomicLong();
    private final AtomicReference<TapStats> lastStats = new AtomicReference<>();
    /** Batches of frames for the listener: written by native code, read only during onNativeFrames. */
    private final ByteBuffer frameBatch = ByteBuffer.allocateDirect(FRAME_BATCH_CAPACITY);

    /**
     * Creates a stopped emulator.
     *
     * @param config the configuration
     * @param listener receives leases, frames (callback mode) and protect requests
     * @throws IllegalArgumentException if the configuration is invalid (bad MAC, address, prefix,
     *     MTU or link URL)
     */
    public TapEmulator(@NonNull TapConfig config, @NonNull TapListener listener) {
        this.config = Objects.requireNonNull(config, "config");
        this.listener = Objects.requireNonNull(listener, "listener");
        this.listenerTakesBatches = overrides(listener, "onFrames", ByteBuffer.class);
        this.handle.set(nativeCreate(this, config.mac, config.staticAddress, config.staticPrefixLength,
                config.staticGateway, config.hostname, config.mtu, config.ipv6, config.linkUrl,
                config.rememberedLease, config.socketPair, config.linkTimeoutMillis, config.protectSockets, config.batchFrames,
                frameBatch));
    }

    /** The native log levels, least to most verbose; see {@link #setLogLevel}. */
    public enum LogLevel {
        /** Nothing. */
        OFF,
        /** Failures the emulator cannot recover from. */
        ERROR,
        /** Trouble it works around (a refused frame, a TUN that failed, a link retry). */
        WARN,
        /** Life-cycle events (the default). */
        INFO,
        /** Protocol detail. */
        DEBUG,
        /** Everything, frame by frame. */
        TRACE
    }

    /**
     * Sets how much the native side logs, for every emulator, from now on: to logcat (tag
     * {@code tapemu}) on Android, to standard error elsewhere.
     *
     * @param level the most verbose level logged
     */
    public static void setLogLevel(@NonNull LogLevel level) {
        nativeSetLogLevel(Objects.requireNonNull(level, "level").ordinal());
    }

    /**
     * Checks a configuration without creating anything.
     *
     * @param config the configuration
     * @throws IllegalArgumentException with the reason if the configuration is invalid
     */
    public static void validate(@NonNull TapConfig config) {
        Objects.requireNonNull(config, "config");
        nativeValidate(config.mac, config.staticAddress, config.staticPrefixLength, config.staticGateway,
                config.hostname, config.mtu, config.ipv6, config.linkUrl, config.rememberedLease,
                config.socketPair);
    }

    /** @return the configuration this emulator was built from */
    public @NonNull TapConfig config() {
        return config;
    }

    /**
     * Starts the emulator thread, which opens the link (calling {@link TapListener#protect} for
     * its sockets; name lookup and connect within {@link TapConfig#linkTimeoutMillis()}) and
     * starts DHCP. Returns at once, without waiting for the network: the lease comes through
     * the listener, and so does a link that cannot be set up, as
     * {@link TapListener#onStopped(String)} with the reason.
     *
     * @throws IllegalStateException if closed or already started, or if a built-in link would
     *     open sockets while the listener does not implement {@link TapListener#protect} and
     *     {@link TapConfig.Builder#protectSockets(boolean)} was not turned off
     */
    public void start() {
        long h = live();
        if (config.needsProtect() && !implementsProtect(listener)) {
            throw new IllegalStateException("the link " + config.linkUrl + " opens sockets, and "
                    + listener.getClass().getName() + " does not implement TapListener.protect(int): on "
                    + "Android implement it with VpnService.protect(fd), or the link's own traffic loops "
                    + "into the VPN; on a desktop JVM set TapConfig.Builder.protectSockets(false)");
        }
        nativeStart(h);
    }

    /** @return whether {@code listener}'s class overrides {@link TapListener#protect}. */
    static boolean implementsProtect(TapListener listener) {
        return overrides(listener, "protect", int.class);
    }

    /** Method names looked up here are kept by consumer-rules.pro. */
    private static boolean overrides(TapListener listener, String name, Class<?>... params) {
        try {
            return listener.getClass().getMethod(name, params).getDeclaringClass() != TapListener.class;
        } catch (NoSuchMethodException e) {
            return false;
        }
    }

    /**
     * Hands over a TUN fd, e.g. from {@code ParcelFileDescriptor.detachFd()}; a previously
     * attached TUN is closed.
     *
     * <p>Ownership, in one sentence: this call always takes {@code fd} and closes it before
     * returning or throwing (the emulator keeps a duplicate, which it attaches or, on any
     * failure, closes at once), so never use, close or reuse the number after the call; only a
     * negative or already closed {@code fd} is left as it was. (One case attaches or closes the
     * duplicate later: an emulator that does not answer in time because a listener blocks its
     * thread for seconds; the {@link IOException} says so.)
     *
     * @param fd an open TUN file descriptor
     * @throws IOException if the fd is negative or not open, or unusable (not a TUN or socket),
     *     or not attached in time
     * @throws IllegalStateException if closed, not started or stopped (the fd is closed all the
     *     same); called while the link opens, it waits for it (at most 10 s)
     */
    public void attachTun(int fd) throws IOException {
        nativeAttachTun(handle.get(), fd); // a closed emulator (handle 0) closes the fd too
    }

    /**
     * Detaches and closes the current TUN fd, if any. Frames from the link for the TUN are dropped
     * until the next {@link #attachTun(int)}; DHCP and ARP go on.
     *
     * @throws IllegalStateException if closed
     */
    public void detachTun() {
        nativeDetachTun(live());
    }

    /**
     * Callback mode: offers the emulator a frame that came from the network. Reads
     * {@code frame.remaining()} bytes from its position, which it leaves unchanged. Direct
     * buffers are not copied on the Java side.
     *
     * @param frame an Ethernet frame
     * @return true if the emulator took the frame; false if its queue is full: slow down and
     *     offer it again (counted in {@code callback_frames_refused}). Never taken and then lost.
     * @throws IllegalStateException if closed or not started, or the emulator uses a built-in link
     */
    public boolean sendFrame(@NonNull ByteBuffer frame) {
        Objects.requireNonNull(frame, "frame");
        long h = live();
        if (frame.isDirect()) {
            return nativeSendFrameDirect(h, frame, frame.position(), frame.remaining());
        } else if (frame.hasArray()) {
            return nativeSendFrameArray(h, frame.array(), frame.arrayOffset() + frame.position(), frame.remaining());
        } else {
            byte[] copy = new byte[frame.remaining()];
            frame.duplicate().get(copy);
            return nativeSendFrameArray(h, copy, 0, copy.length);
        }
    }

    /**
     * Callback mode: offers the emulator a frame that came from the network.
     *
     * @param frame array holding the frame
     * @param offset start of the frame in the array
     * @param length length of the frame
     * @return true if taken; false if the queue is full (see {@link #sendFrame(ByteBuffer)})
     * @throws IndexOutOfBoundsException if offset/length do not fit the array
     * @throws IllegalStateException if closed or not started, or the emulator uses a built-in link
     */
    public boolean sendFrame(@NonNull byte[] frame, int offset, int length) {
        Objects.requireNonNull(frame, "frame");
        checkRange(frame, offset, length);
        return nativeSendFrameArray(live(), frame, offset, length);
    }

    /**
     * Callback mode: offers the emulator many frames that came from the network, in one call.
     * The batch, from its position to its limit, is the layout {@link TapListener#onFrames}
     * receives: each frame is its length as a 4-byte big-endian {@code int}, then its bytes.
     *
     * <p>Frames are taken in order until the emulator's queue is full; the position moves past
     * the frames taken, so what remains is what was not taken: offer it again later (slow the
     * app's protocol down meanwhile). A frame reported as taken is never dropped silently: it
     * reaches the emulated host, which counts whatever it drops. Direct buffers are not copied
     * on the Java side.
     *
     * @param batch length-prefixed frames between position and limit
     * @return the number of frames taken
     * @throws IllegalArgumentException if the batch is malformed (a length running past the
     *     limit, or a partial length); then nothing is taken
     * @throws IllegalStateException if closed or not started, or the emulator uses a built-in link
     */
    public int sendFrames(@NonNull ByteBuffer batch) {
        Objects.requireNonNull(batch, "batch");
        long h = live();
        long taken;
        if (batch.isDirect()) {
            taken = nativeSendFramesDirect(h, batch, batch.position(), batch.remaining());
        } else if (batch.hasArray()) {
            taken = nativeSendFramesArray(h, batch.array(), batch.arrayOffset() + batch.position(), batch.remaining());
        } else {
            byte[] copy = new byte[batch.remaining()];
            batch.duplicate().get(copy);
            taken = nativeSendFramesArray(h, copy, 0, copy.length);
        }
        batch.position(batch.position() + (int) (taken >>> 32));
        return (int) taken;
    }

    private static void checkRange(byte[] array, int offset, int length) {
        if (offset < 0 || length < 0 || offset > array.length - length) {
            throw new IndexOutOfBoundsException("offset " + offset + " length " + length
                    + " array " + array.length);
        }
    }

    /** @return the counters now, or the last ones taken before {@link #close()} */
    public @NonNull TapStats stats() {
        long h = handle.get();
        if (h != 0) {
            try {
                TapStats s = new TapStats(names(), nativeStats(h), listenerErrors.get());
                lastStats.set(s);
                return s;
            } catch (IllegalStateException closedMeanwhile) {
                // fall through to the last snapshot
            }
        }
        TapStats last = lastStats.get();
        return last != null ? last : new TapStats(new String[0], new long[0], listenerErrors.get());
    }

    /**
     * The MAC the emulator uses on the link: the configured one, or the random locally
     * administered one drawn when this emulator was created. Store it and give it back with
     * {@link TapConfig.Builder#mac(String)} so the DHCP server recognises the host next time
     * (the DHCP client identifier is derived from it).
     *
     * @return the MAC, lower-case hex octets separated by {@code :}
     * @throws IllegalStateException if closed
     */
    public @NonNull String mac() {
        return nativeMac(live());
    }

    /**
     * {@link TapConfig.Builder#socketPair()}: the app's end of the socket pair, for a VPN engine
     * that expects a TAP fd; each datagram on it is one Ethernet frame. It exists from
     * construction, so the engine may open it before {@link #start()}.
     *
     * <p>Ownership, in one sentence: this call hands the fd over once, and from then on the
     * caller owns it (the engine closes it, or the app does; the emulator never touches that
     * number again), while an fd never handed out is closed with the emulator.
     *
     * @return the fd, close-on-exec
     * @throws IllegalStateException if closed, if the configuration is not a socket pair, or if
     *     the fd was handed out already
     */
    public int peerFd() {
        return nativePeerFd(live());
    }

    /**
     * The DHCP lease in force in the form {@link TapConfig.Builder#rememberedLease(String)}
     * takes, with wall-clock times (the CLI's lease file). Updated before the listener hears of
     * a lease, so {@link TapListener#onLeaseAcquired}, {@link TapListener#onLeaseRenewed} and
     * {@link TapListener#onLeaseChanged} may read and store it.
     *
     * @return the JSON, or {@code null} without a lease (not yet, lost, or a static address)
     * @throws IllegalStateException if closed
     */
    public @Nullable String storedLease() {
        return nativeStoredLease(live());
    }

    /**
     * The network under the link changed (Wi-Fi to cellular, a new address, a network lost and
     * back): every link socket is opened again, each passed to {@link TapListener#protect(int)}
     * again, host names resolved again, a TCP link reconnected at once. Then the emulator
     * re-announces itself as a host does after a link flap (gratuitous ARP, unsolicited NAs,
     * a router solicitation) and confirms its lease with a DHCPREQUEST (no DHCPDISCOVER): the
     * address is kept unless the server says otherwise, which comes as
     * {@link TapListener#onLeaseChanged} or {@link TapListener#onLeaseLost}. Call it from
     * {@code ConnectivityManager.NetworkCallback.onAvailable} or {@code onLinkPropertiesChanged}.
     * A no-op in callback mode apart from the re-announcement and the confirmation.
     *
     * <p>Returns once the emulator took the command; from a listener method, at once. Called
     * while the link is still opening, it waits for it (at most 10 s).
     *
     * @throws IllegalStateException if closed, not started or stopped
     */
    public void networkChanged() {
        nativeNetworkChanged(live());
    }

    /**
     * When the emulator's next protocol timer is due (a DHCP renewal, a retransmission, a
     * neighbour or router lifetime), on the clock of {@code SystemClock.elapsedRealtimeNanos()}
     * ({@code CLOCK_BOOTTIME}, which counts time asleep).
     *
     * <p>The emulator's own sleep counts time asleep too, so a timer that fell due during sleep
     * runs as soon as the device wakes for any reason. Nothing wakes the device for it, though:
     * under Doze a renewal could wait for hours. An app that must keep its lease through sleep
     * sets an alarm for this deadline and calls {@link #poke()} when it fires:
     *
     * <pre>{@code
     * long at = tap.nextTimerElapsedRealtimeNanos();
     * if (at >= 0) {
     *     alarmManager.setExactAndAllowWhileIdle(AlarmManager.ELAPSED_REALTIME_WAKEUP,
     *             at / 1_000_000, pendingIntent);   // its receiver calls tap.poke()
     * }
     * }</pre>
     *
     * (Ask again after each lease event and each {@code poke()}: renewals move the deadline. An
     * alarm allowed while idle fires at most about once per 9 minutes under Doze.)
     *
     * @return nanoseconds on the elapsed-realtime clock, or -1 when no timer runs
     * @throws IllegalStateException if closed, not started or stopped, or called from a listener
     *     method (it waits for the emulator thread, which runs the listener)
     */
    public long nextTimerElapsedRealtimeNanos() {
        return nativeNextTimer(live());
    }

    /**
     * Runs the protocol timers that are due now, e.g. when the alarm set for
     * {@link #nextTimerElapsedRealtimeNanos()} fires (the emulator would run them at its next
     * wake-up anyway; this is that wake-up). Returns once the emulator took the command.
     *
     * @throws IllegalStateException if closed, not started or stopped
     */
    public void poke() {
        nativePoke(live());
    }

    /** @return true once {@link #close()} was called */
    public boolean isClosed() {
        return handle.get() == 0;
    }

    /**
     * Releases the DHCP lease, stops the emulator, closes the TUN fd and the link: {@link
     * #close(boolean) close(true)}. Idempotent.
     */
    @Override
    public void close() {
        close(true);
    }

    /**
     * Stops the emulator and closes the TUN fd and the link, releasing the DHCP lease first
     * (DHCPRELEASE) only if {@code release}. Without it the server keeps the lease until it
     * expires, so the next run, given {@link #mac()} and {@link #storedLease()}, gets the same
     * address back at once. Idempotent: only the first call counts. From a listener method it
     * does not wait for the emulator thread; from elsewhere it returns once no listener method
     * runs any more. It holds no Java lock while it waits, so a listener may call any method
     * meanwhile.
     *
     * @param release whether to give the lease back to the server
     */
    public void close(boolean release) {
        long h = handle.getAndSet(0);
        if (h == 0) {
            return;
        }
        long[] last = nativeClose(h, release);
        if (last != null) {
            lastStats.set(new TapStats(names(), last, listenerErrors.get()));
        }
    }

    private long live() {
        long h = handle.get();
        if (h == 0) {
            throw new IllegalStateException("TapEmulator is closed");
        }
        return h;
    }

    private static String[] names() {
        String[] n = statNames;
        if (n == null) {
            n = nativeStatNames().split("\n");
            statNames = n;
        }
        return n;
    }

    // ---- called from native code on the emulator thread -------------------------------------

    /**
     * One event from the native side: the JSON object {@code tapemu --json} prints for it
     * ({@code jni-bindings/src/events.rs}), handed to the listener by its {@code "event"} name.
     * Names this side does not know are ignored (a newer native side).
     */
    @SuppressWarnings("unused") // called from native code
    private void onNativeEvent(String json) {
        try {
            Json.Obj e = Json.parseObject(json);
            switch (e.string("event")) {
                case "lease": // a DHCP lease
                case "ipv4": // a static address (the native side sends it only then)
                    listener.onLeaseAcquired(Lease.from(e));
                    break;
                case "renewed": listener.onLeaseRenewed(Lease.from(e)); break;
                case "changed": listener.onLeaseChanged(Lease.from(e.object("old")), Lease.from(e)); break;
                case "lost": listener.onLeaseLost(e.string("address"), e.string("reason")); break;
                case "conflict": // an ARP conflict on our address
                case "declined": // an offered address in use, declined
                    listener.onAddressConflict(e.string("address"), e.optString("mac"));
                    break;
                case "ipv6_conflict": listener.onAddressConflict(e.string("address"), null); break;
                case "ipv6": listener.onIpv6Changed(Ipv6Info.from(e)); break;
                case "link_down": listener.onLinkDown(e.string("error"), e.optInteger("retry_ms", -1)); break;
                case "link_up": listener.onLinkUp(); break;
                case "tun_failed": listener.onTunFailed(e.string("error")); break;
                case "stopped": listener.onStopped(e.optString("error")); break;
                default: break;
            }
        } catch (Throwable t) {
            listenerFailed("event " + json, t);
        }
    }

    /**
     * A batch of {@code count} frames in {@link #frameBatch}'s first {@code length} bytes; the
     * native side writes the buffer again only after this returns.
     */
    @SuppressWarnings("unused") // called from native code
    private void onNativeFrames(int length, int count) {
        ByteBuffer batch = frameBatch;
        batch.clear().limit(length);
        if (listenerTakesBatches) {
            try {
                listener.onFrames(batch);
            } catch (Throwable t) {
                listenerFailed("onFrames", t);
            }
            return;
        }
        // TapListener.onFrames's default, with each frame's failure caught on its own.
        while (batch.remaining() >= 4) {
            byte[] frame = new byte[batch.getInt()];
            batch.get(frame);
            try {
                listener.onFrame(ByteBuffer.wrap(frame));
            } catch (Throwable t) {
                listenerFailed("onFrame", t);
            }
        }
    }

    @SuppressWarnings("unused") // called from native code
    private void onNativeFrame(byte[] frame) {
        try {
            listener.onFrame(ByteBuffer.wrap(frame));
        } catch (Throwable t) {
            listenerFailed("onFrame", t);
        }
    }

    @SuppressWarnings("unused") // called from native code
    private boolean onNativeProtect(int fd) {
        try {
            return listener.protect(fd);
        } catch (Throwable t) {
            listenerFailed("protect", t);
            return false;
        }
    }

    private void listenerFailed(String what, Throwable t) {
        long n = listenerErrors.incrementAndGet();
        if (n <= 10 || Long.bitCount(n) == 1) { // do not flood the log
            LOG.log(Level.WARNING, "tapemu listener " + what + " threw (" + n + " so far)", t);
        }
    }

    // ---- native entry points (jni-bindings/src/exports.rs) ----------------------------------

    private static native void nativeValidate(String mac, String address, int prefixLength, String gateway,
            String hostname, int mtu, boolean ipv6, String linkUrl, String rememberedLease, boolean socketPair);

    private static native long nativeCreate(TapEmulator self, String mac, String address, int prefixLength, String gateway,
            String hostname, int mtu, boolean ipv6, String linkUrl, String rememberedLease, boolean socketPair, int linkTimeoutMillis,
            boolean protectSockets, boolean batchFrames, ByteBuffer frameBatch);

    private static native String nativeMac(long handle);

    private static native int nativePeerFd(long handle);

    private static native String nativeStoredLease(long handle);

    private static native void nativeNetworkChanged(long handle);

    private static native long nativeNextTimer(long handle);

    private static native void nativePoke(long handle);

    private static native void nativeSetLogLevel(int level);

    private static native void nativeStart(long handle);

    private static native void nativeAttachTun(long handle, int fd) throws IOException;

    private static native void nativeDetachTun(long handle);

    private static native boolean nativeSendFrameDirect(long handle, ByteBuffer frame, int offset, int length);

    private static native boolean nativeSendFrameArray(long handle, byte[] frame, int offset, int length);

    /** @return bytes taken {@code << 32 |} frames taken */
    private static native long nativeSendFramesDirect(long handle, ByteBuffer batch, int offset, int length);

    /** @return bytes taken {@code << 32 |} frames taken */
    private static native long nativeSendFramesArray(long handle, byte[] batch, int offset, int length);

    private static native long[] nativeStats(long handle);

    /** @return the counter names, one per line, in {@link #nativeStats} order */
    private static native String nativeStatNames();

    /** @return the last counters, or null for an unknown handle */
    private static native long[] nativeClose(long handle, boolean release);

    /** @return native sessions not yet closed, across all emulators (for leak tests) */
    static native long nativeLiveSessions();

    /** @return JNI global references the native side holds, across all emulators (for leak tests) */
    static native long nativeLiveGlobalRefs();
}
