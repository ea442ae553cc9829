package io.tapemu;

import java.nio.ByteBuffer;

/**
 * Receives what a {@link TapEmulator} has to report. Every method has a default, so implement
 * only what you need, except {@link #protect(int)}, which a built-in link needs (see there).
 *
 * <p>All methods are called on the emulator's native thread, one at a time (see the
 * {@linkplain io.tapemu package documentation}); keep them short. Exceptions they throw are
 * caught, logged and counted; they never stop the emulator.
 */
public interface TapListener {
    /**
     * An address was obtained: build the VPN interface from it, {@code establish()} and hand
     * the fd to {@link TapEmulator#attachTun(int)}. With a static address this is called once,
     * right after {@link TapEmulator#start()}.
     *
     * @param lease the new configuration
     */
    default void onLeaseAcquired(@NonNull Lease lease) {}

    /**
     * The lease was renewed with the same address and options: nothing to rebuild.
     *
     * @param lease the renewed lease
     */
    default void onLeaseRenewed(@NonNull Lease lease) {}

    /**
     * The configuration changed (new address, routes, DNS or MTU): rebuild the VPN interface and
     * attach the new fd.
     *
     * @param oldLease the previous lease
     * @param newLease the lease now in force
     */
    default void onLeaseChanged(@NonNull Lease oldLease, @NonNull Lease newLease) {}

    /**
     * The address is gone (expired, NAK, released): packets from the TUN are dropped until
     * {@link #onLeaseAcquired} comes again.
     *
     * @param address the address that was lost
     * @param reason {@code expired}, {@code nak} or {@code released}: the {@code reason} of the
     *     {@code lost} event {@code tapemu --json} prints
     */
    default void onLeaseLost(@NonNull String address, @NonNull String reason) {}

    /**
     * Another host on the link claims our address: an ARP conflict on the IPv4 address in
     * force, an offered address found in use (then declined, and DHCP starts over), or an IPv6
     * address that failed duplicate address detection.
     *
     * @param address the contested address
     * @param mac the MAC of the other host, or {@code null} when unknown (IPv6 DAD)
     */
    default void onAddressConflict(@NonNull String address, @Nullable String mac) {}

    /**
     * The IPv6 configuration (SLAAC addresses, routes, DNS, MTU) changed: add its addresses and
     * routes when (re)building the VPN interface.
     *
     * @param info the complete new IPv6 state
     */
    default void onIpv6Changed(@NonNull Ipv6Info info) {}

    /**
     * Callback mode only: an Ethernet frame to carry to the network through the app's own VPN
     * protocol. The buffer wraps a fresh array the listener may keep. Called by the default
     * {@link #onFrames}, once per frame, or directly with
     * {@link TapConfig.Builder#batchFrames(boolean) batchFrames(false)}.
     *
     * @param frame the frame, position 0, limit its length
     */
    default void onFrame(@NonNull ByteBuffer frame) {}

    /**
     * Callback mode only: Ethernet frames to carry to the network, many per call (the default;
     * see {@link TapConfig.Builder#batchFrames(boolean)}). Layout, from the position (0) to the
     * limit: for each frame, its length as a 4-byte big-endian {@code int}, then its bytes; read
     * it with {@code while (batch.hasRemaining()) { int n = batch.getInt(); ... batch.position(
     * batch.position() + n); }}. {@link TapEmulator#sendFrames(ByteBuffer)} takes the same
     * layout, so a batch can be forwarded as it is.
     *
     * <p>The buffer is direct and reused: it is valid only during this call (copy what you
     * keep). When the listener is slower than the emulator, frames it could not take in time are
     * dropped and counted in {@link TapStats} as {@code link_dropped_out}, never silently.
     *
     * <p>The default hands each frame, copied into a fresh array, to {@link #onFrame}.
     *
     * @param batch the frames, length-prefixed
     */
    default void onFrames(@NonNull ByteBuffer batch) {
        while (batch.remaining() >= 4) {
            int length = batch.getInt();
            byte[] frame = new byte[length];
            batch.get(frame);
            onFrame(ByteBuffer.wrap(frame));
        }
    }

    /**
     * A built-in link ({@code udp}, {@code tcp}, {@code vxlan}) opened a socket: protect it
     * from the VPN before it connects (call {@code VpnService.protect(fd)}), or the link's own
     * traffic loops into the VPN. Return false to abort the connection.
     *
     * <p>There is no silent default: with such a link, {@link TapEmulator#start()} throws
     * {@link IllegalStateException} unless the listener implements this method, or the
     * configuration turns protection off with
     * {@link TapConfig.Builder#protectSockets(boolean) protectSockets(false)} (desktop JVMs,
     * where there is no VPN to loop into). The default, never called then, returns false.
     *
     * @param fd the socket file descriptor; do not close it
     * @return true when the socket is protected
     */
    default boolean protect(int fd) {
        return false;
    }

    /**
     * The link failed: a TCP connection dropped or timed out, or a datagram link lost its
     * route. The emulator keeps its lease and opens the link again after {@code retryInMillis};
     * frames meanwhile are dropped and counted. This is the {@code link_down} line of
     * {@code tapemu run --json}: {@code {"error":...,"event":"link_down","retry_ms":250}}.
     *
     * @param error why, naming the link URL
     * @param retryInMillis when the next attempt is made, or -1 when none is planned
     */
    default void onLinkDown(@NonNull String error, long retryInMillis) {}

    /**
     * The link carries frames again after {@link #onLinkDown}: a TCP link reconnected, or a
     * datagram link sent or received on a reopened socket ({@code link_up} in
     * {@code tapemu run --json}).
     */
    default void onLinkUp() {}

    /**
     * The TUN failed (a read or write error, or end of file) and was detached and closed:
     * establish a new interface and {@link TapEmulator#attachTun(int) attach} it
     * ({@code tun_failed} in {@code tapemu run --json}).
     *
     * @param error why
     */
    default void onTunFailed(@NonNull String error) {}

    /**
     * The emulator stopped on its own (link failure) or after {@link TapEmulator#close()}.
     *
     * @param error why it stopped on its own, or {@code null} after close()
     */
    default void onStopped(@Nullable String error) {}
}
