/**
 * tapemu for Java and Android: an emulated Ethernet (TAP) host on top of the TUN file
 * descriptor an Android {@code VpnService} hands out.
 *
 * <p>Start with {@link io.tapemu.TapConfig#builder()}, create a {@link io.tapemu.TapEmulator}
 * with a {@link io.tapemu.TapListener}, call {@link io.tapemu.TapEmulator#start()}, wait for
 * {@link io.tapemu.TapListener#onLeaseAcquired(Lease)}, build the VPN interface from the
 * {@link io.tapemu.Lease} and hand its fd to {@link io.tapemu.TapEmulator#attachTun(int)}.
 *
 * <h2>Threading</h2>
 * <ul>
 *   <li>Every {@link io.tapemu.TapListener} method is called on the emulator's own native
 *       thread (named {@code tapemu-*}), one call at a time, never on the thread that called
 *       into the emulator. Listener methods must return quickly: while one runs, no frame
 *       moves. Post to your own handler or executor for anything slow.</li>
 *   <li>All {@link io.tapemu.TapEmulator} methods are thread-safe and may be called from any
 *       thread, including from inside a listener method. {@link io.tapemu.TapEmulator#close()}
 *       called from a listener method stops the emulator without waiting for its thread (it
 *       cannot wait for itself); called from any other thread it returns once the emulator
 *       thread has ended and no listener method runs any more.</li>
 *   <li>An exception thrown by a listener method is caught, logged and counted
 *       ({@link io.tapemu.TapStats#listenerErrors()}); it never reaches native code and never
 *       stops the emulator.</li>
 * </ul>
 */
package io.tapemu;
