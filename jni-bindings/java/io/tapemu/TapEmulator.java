package io.tapemu;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * An emulated Ethernet host between a TUN fd (the {@code VpnService} interface) and a layer-2
 * link: it answers ARP, resolves neighbours, gets an address by DHCP and adds or strips
 * Ethernet headers.
 *
 * <p>Life cycle: construct (validates the configuration), {@link #start()}, wait for
 * {@link TapListener#onLeaseAcquired}, {@link #attachTun(int)}, and finally {@link #close()}
 * (releases the lease and stops; idempotent). On a lease change, establish a new interface and
 * attach its fd: the old one is closed.
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
    private static volatile String[] statNames;

    static {
        System.loadLibrary("tapemu_jni");
    }

    private final TapListener listener;
    private final TapConfig config;
    private final AtomicLong listenerErrors = new AtomicLong();
    private final Object lock = new Object();
    /** Native session id; 0 once closed. Guarded by {@link #lock} for writes. */
    private volatile long handle;
    private volatile TapStats lastStats;

    /**
     * Creates a stopped emulator.
     *
     * @param config the configuration
     * @param listener receives leases, frames (callback mode) and protect requests
     * @throws IllegalArgumentException if the configuration is invalid (bad MAC, address, prefix,
     *     MTU or link URL)
     */
    public TapEmulator(TapConfig config, TapListener listener) {
        this.config = Objects.requireNonNull(config, "config");
        this.listener = Objects.requireNonNull(listener, "listener");
        this.handle = nativeCreate(this, config.mac, config.staticAddress, config.staticPrefixLength,
                config.staticGateway, config.hostname, config.mtu, config.ipv6, config.linkUrl);
    }

    /**
     * Checks a configuration without creating anything.
     *
     * @param config the configuration
     * @throws IllegalArgumentException with the reason if the configuration is invalid
     */
    public static void validate(TapConfig config) {
        Objects.requireNonNull(config, "config");
        nativeValidate(config.mac, config.staticAddress, config.staticPrefixLength, config.staticGateway,
                config.hostname, config.mtu, config.ipv6, config.linkUrl);
    }

    /** @return the configuration this emulator was built from */
    public TapConfig config() {
        return config;
    }

    /**
     * Starts the emulator thread: connects the link (calling {@link TapListener#protect} for its
     * sockets) and starts DHCP. Returns at once; the lease comes through the listener.
     *
     * @throws IllegalStateException if closed or already started
     * @throws IOException if the link cannot be set up
     */
    public void start() throws IOException {
        nativeStart(live());
    }

    /**
     * Hands over a TUN fd, e.g. from {@code ParcelFileDescriptor.detachFd()}; a previously
     * attached TUN is closed.
     *
     * <p>Ownership: if {@code fd} is negative or not open, or this throws
     * {@link IllegalStateException}, the fd is left untouched and stays the caller's. Otherwise
     * the emulator owns it from this call on, whatever the outcome: it is attached and closed
     * later by the emulator, or, on an {@link IOException}, already closed by it. The one
     * exception to "already closed" is an emulator that does not answer in time (a listener
     * blocking its thread for seconds): the {@link IOException} says so, and the emulator
     * attaches or closes the fd once it gets to it. Never close or reuse the fd after handing it
     * over.
     *
     * @param fd an open TUN file descriptor
     * @throws IOException if the fd is negative or not open (untouched), or unusable or not
     *     attached in time (the emulator's to close, see above)
     * @throws IllegalStateException if closed, not started or stopped (the fd is untouched)
     */
    public void attachTun(int fd) throws IOException {
        nativeAttachTun(live(), fd);
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
     * Callback mode: hands the emulator a frame that came from the network. Reads
     * {@code frame.remaining()} bytes from its position, which it leaves unchanged. Direct
     * buffers are not copied on the Java side.
     *
     * @param frame an Ethernet frame
     * @throws IllegalStateException if closed, or the emulator uses a built-in link
     */
    public void sendFrame(ByteBuffer frame) {
        Objects.requireNonNull(frame, "frame");
        long h = live();
        if (frame.isDirect()) {
            nativeSendFrameDirect(h, frame, frame.position(), frame.remaining());
        } else if (frame.hasArray()) {
            nativeSendFrameArray(h, frame.array(), frame.arrayOffset() + frame.position(), frame.remaining());
        } else {
            byte[] copy = new byte[frame.remaining()];
            frame.duplicate().get(copy);
            nativeSendFrameArray(h, copy, 0, copy.length);
        }
    }

    /**
     * Callback mode: hands the emulator a frame that came from the network.
     *
     * @param frame array holding the frame
     * @param offset start of the frame in the array
     * @param length length of the frame
     * @throws IndexOutOfBoundsException if offset/length do not fit the array
     * @throws IllegalStateException if closed, or the emulator uses a built-in link
     */
    public void sendFrame(byte[] frame, int offset, int length) {
        Objects.requireNonNull(frame, "frame");
        if (offset < 0 || length < 0 || offset > frame.length - length) {
            throw new IndexOutOfBoundsException("offset " + offset + " length " + length
                    + " array " + frame.length);
        }
        nativeSendFrameArray(live(), frame, offset, length);
    }

    /** @return the counters now, or the last ones taken before {@link #close()} */
    public TapStats stats() {
        long h = handle;
        if (h != 0) {
            try {
                long[] values = nativeStats(h);
                TapStats s = new TapStats(names(), values, listenerErrors.get());
                lastStats = s;
                return s;
            } catch (IllegalStateException closedMeanwhile) {
                // fall through to the last snapshot
            }
        }
        TapStats last = lastStats;
        return last != null ? last : new TapStats(new String[0], new long[0], listenerErrors.get());
    }

    /** @return true once {@link #close()} was called */
    public boolean isClosed() {
        return handle == 0;
    }

    /**
     * Releases the DHCP lease, stops the emulator, closes the TUN fd and the link. Idempotent.
     * From a listener method it does not wait for the emulator thread; from elsewhere it returns
     * once no listener method runs any more.
     */
    @Override
    public void close() {
        long h;
        synchronized (lock) {
            h = handle;
            if (h == 0) {
                return;
            }
            try {
                lastStats = new TapStats(names(), nativeStats(h), listenerErrors.get());
            } catch (RuntimeException ignored) {
                // best effort
            }
            handle = 0;
        }
        nativeClose(h);
    }

    private long live() {
        long h = handle;
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
                case "stopped": listener.onStopped(e.optString("error")); break;
                default: break;
            }
        } catch (Throwable t) {
            listenerFailed("event " + json, t);
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
            String hostname, int mtu, boolean ipv6, String linkUrl);

    private static native long nativeCreate(TapEmulator self, String mac, String address, int prefixLength,
            String gateway, String hostname, int mtu, boolean ipv6, String linkUrl);

    private static native void nativeStart(long handle) throws IOException;

    private static native void nativeAttachTun(long handle, int fd) throws IOException;

    private static native void nativeDetachTun(long handle);

    private static native void nativeSendFrameDirect(long handle, ByteBuffer frame, int offset, int length);

    private static native void nativeSendFrameArray(long handle, byte[] frame, int offset, int length);

    private static native long[] nativeStats(long handle);

    /** @return the counter names, one per line, in {@link #nativeStats} order */
    private static native String nativeStatNames();

    private static native void nativeClose(long handle);

    /** @return native sessions not yet closed, across all emulators (for leak tests) */
    static native long nativeLiveSessions();

    /** @return JNI global references the native side holds, across all emulators (for leak tests) */
    static native long nativeLiveGlobalRefs();
}
