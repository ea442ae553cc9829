package io.tapemu;

import java.nio.ByteBuffer;

/**
 * Receives what a {@link TapEmulator} has to report. Every method has an empty default, so
 * implement only what you need.
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
    default void onLeaseAcquired(Lease lease) {}

    /**
     * The lease was renewed with the same address and options: nothing to rebuild.
     *
     * @param lease the renewed lease
     */
    default void onLeaseRenewed(Lease lease) {}

    /**
     * The configuration changed (new address, routes, DNS or MTU): rebuild the VPN interface and
     * attach the new fd.
     *
     * @param oldLease the previous lease
     * @param newLease the lease now in force
     */
    default void onLeaseChanged(Lease oldLease, Lease newLease) {}

    /**
     * The address is gone (expired, NAK, released): packets from the TUN are dropped until
     * {@link #onLeaseAcquired} comes again.
     *
     * @param address the address that was lost
     * @param reason {@code expired}, {@code nak} or {@code released}: the {@code reason} of the
     *     {@code lost} event {@code tapemu --json} prints
     */
    default void onLeaseLost(String address, String reason) {}

    /**
     * Another host on the link claims our address: an ARP conflict on the IPv4 address in
     * force, an offered address found in use (then declined, and DHCP starts over), or an IPv6
     * address that failed duplicate address detection.
     *
     * @param address the contested address
     * @param mac the MAC of the other host, or {@code null} when unknown (IPv6 DAD)
     */
    default void onAddressConflict(String address, String mac) {}

    /**
     * The IPv6 configuration (SLAAC addresses, routes, DNS, MTU) changed: add its addresses and
     * routes when (re)building the VPN interface.
     *
     * @param info the complete new IPv6 state
     */
    default void onIpv6Changed(Ipv6Info info) {}

    /**
     * Callback mode only: an Ethernet frame to carry to the network through the app's own VPN
     * protocol. The buffer wraps a fresh array the listener may keep.
     *
     * @param frame the frame, position 0, limit its length
     */
    default void onFrame(ByteBuffer frame) {}

    /**
     * A built-in link opened a socket: protect it from the VPN before it connects (call
     * {@code VpnService.protect(fd)}). Return false to abort the connection.
     *
     * @param fd the socket file descriptor; do not close it
     * @return true when the socket is protected
     */
    default boolean protect(int fd) {
        return true;
    }

    /**
     * The emulator stopped on its own (link failure) or after {@link TapEmulator#close()}.
     *
     * @param error why it stopped on its own, or {@code null} after close()
     */
    default void onStopped(String error) {}
}
