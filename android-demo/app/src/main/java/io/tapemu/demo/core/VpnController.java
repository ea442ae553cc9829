package io.tapemu.demo.core;

import io.tapemu.Ipv6Info;
import io.tapemu.Lease;
import io.tapemu.TapConfig;
import io.tapemu.TapEmulator;
import io.tapemu.TapListener;
import java.io.IOException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The whole VpnService flow, without the Android SDK: start the emulator (its sockets
 * protected), wait for the lease, build the interface from it, hand the fd over, rebuild on a
 * change, follow the underlying network, stop cleanly. The Android service supplies a
 * {@link Platform}.
 *
 * <p>Kill switch: while the VPN is meant to be up, its interface is never torn down. A new
 * interface is established before the emulator swaps it in (and closes the old one); a lost
 * lease keeps the interface in force, whose packets the emulator drops until the next lease;
 * a failed rebuild keeps the old interface. Only {@link #stop()}, a revoked VPN permission,
 * a TUN the emulator cannot take or a stopped emulator take it down.
 *
 * <p>IPv4 and IPv6 in one interface: when IPv6 is on, the first interface waits up to the
 * IPv6 grace period after the IPv4 lease for a global IPv6 address, so that both usually
 * arrive in one {@code establish()}; IPv6 arriving later rebuilds once.
 *
 * <p>Threading: listener callbacks arrive on the emulator's thread and are posted to this
 * controller's own single worker thread, where all state changes and all {@link Platform}
 * calls but {@link Platform#protect} happen; the public methods may be called from any
 * thread. No exception escapes a task on the worker: each is caught and handed to
 * {@link Platform#onTaskFailed}.
 */
public final class VpnController {
    /** The start action that stops the VPN; any other start, with or without an action, connects. */
    public static final String ACTION_STOP = "io.tapemu.demo.STOP";
    /** How long the first interface waits for IPv6 after the IPv4 lease, by default. */
    public static final long DEFAULT_IPV6_GRACE_MS = 2000;

    /** What the controller is doing. */
    public enum State {
        /** Not started. */
        IDLE,
        /** Emulator started, link up, waiting for DHCP. */
        WAITING_FOR_LEASE,
        /** Interface established and attached. */
        CONNECTED,
        /** The lease is gone; the interface stays (its packets are dropped) until a new one. */
        LEASE_LOST,
        /** Stopped by {@link #stop()} or by the system. */
        STOPPED,
        /** Stopped on an error (see the detail). */
        FAILED
    }

    /** What the controller needs from Android. */
    public interface Platform {
        /**
         * {@code VpnService.protect(fd)}; called on the emulator's thread.
         *
         * @param fd a socket of the emulator's link
         * @return true if protected
         */
        boolean protect(int fd);

        /**
         * Builds the VPN interface ({@code VpnService.Builder}: addAddress, addRoute,
         * addDnsServer, addSearchDomain, setMtu, setMetered), {@code establish()}es it and
         * returns {@code ParcelFileDescriptor.detachFd()}. The interface it replaces, if any,
         * stays open until the emulator has the new one.
         *
         * @param plan the interface to build
         * @return the detached fd, or -1 if this app is no longer the VPN (permission revoked)
         * @throws Exception if the builder rejects the plan
         */
        int establish(InterfacePlan plan) throws Exception;

        /**
         * {@code VpnService.setUnderlyingNetworks}: the network the link's traffic now uses.
         *
         * @param network an {@code android.net.Network}, or null for the system default
         */
        void setUnderlyingNetwork(Object network);

        /**
         * Tells the emulator that the underlying network changed, so that its link follows it.
         *
         * @param emulator the running emulator
         */
        void networkChanged(TapEmulator emulator);

        /**
         * State changes, on the controller's worker thread; post to the UI from here.
         *
         * @param state the new state
         * @param plan the interface in force, or null
         * @param detail an error or a remark, or null
         */
        void onStateChanged(State state, InterfacePlan plan, String detail);

        /**
         * The emulator's identity to keep for the next start, so that a restarted app (or
         * service) gets its address back at once: the MAC and the lease in force, in the
         * form {@link TapConfig.Builder#rememberedLease(String)} takes. Called on the worker
         * after each lease event; the default keeps nothing.
         *
         * @param mac the emulator's MAC
         * @param storedLease the lease as JSON, or null when there is none
         */
        default void storeIdentity(String mac, String storedLease) {}

        /**
         * A task on the worker threw: a bug, caught so that the worker goes on.
         *
         * @param task what the task was doing
         * @param error what it threw
         */
        void onTaskFailed(String task, Throwable error);
    }

    /** Creates emulators; tests substitute one that keeps the listener. */
    public interface EmulatorFactory {
        /**
         * @param config the configuration
         * @param listener the controller's listener
         * @return a new, not yet started emulator
         */
        TapEmulator create(TapConfig config, TapListener listener);
    }

    private final Platform platform;
    private final String session;
    private final EmulatorFactory factory;
    private final long ipv6GraceMs;
    private final ScheduledThreadPoolExecutor worker;
    // Only touched on the worker thread, but tap is read by statsText() too.
    private volatile TapEmulator tap;
    private TapConfig config;
    private InterfacePlan plan; // the interface in force (attached), or null
    private Lease lease;
    private Ipv6Info ipv6;
    private ScheduledFuture<?> ipv6Grace; // armed while the first interface waits for IPv6
    private boolean ipv6GraceOver;
    private State state = State.IDLE;

    /**
     * @param platform the Android side
     * @param session session name for the VPN interface
     */
    public VpnController(Platform platform, String session) {
        this(platform, session, TapEmulator::new, DEFAULT_IPV6_GRACE_MS);
    }

    /**
     * @param platform the Android side
     * @param session session name for the VPN interface
     * @param factory creates the emulators
     * @param ipv6GraceMs how long the first interface waits for IPv6 after the IPv4 lease
     */
    public VpnController(Platform platform, String session, EmulatorFactory factory, long ipv6GraceMs) {
        this.platform = platform;
        this.session = session;
        this.factory = factory;
        this.ipv6GraceMs = ipv6GraceMs;
        this.worker = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "vpn-controller");
            t.setDaemon(true);
            return t;
        });
        worker.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
        worker.setRemoveOnCancelPolicy(true);
    }

    /**
     * The configuration the demo uses: DHCP with a hostname over the given server link.
     *
     * @param serverUrl a link URL such as {@code vxlan://198.51.100.1:4789?vni=42}
     * @param hostname hostname for DHCP
     * @return the configuration
     */
    public static TapConfig configFor(String serverUrl, String hostname) {
        return configFor(serverUrl, hostname, null, null);
    }

    /**
     * {@link #configFor(String, String)} with the identity {@link Platform#storeIdentity} kept
     * from an earlier run: the same MAC, and the lease asked for again (INIT-REBOOT).
     *
     * @param serverUrl a link URL
     * @param hostname hostname for DHCP
     * @param mac the MAC of an earlier run, or null for a new one
     * @param storedLease the lease of an earlier run, or null
     * @return the configuration
     */
    public static TapConfig configFor(String serverUrl, String hostname, String mac, String storedLease) {
        return TapConfig.builder().hostname(hostname).link(serverUrl).mac(mac)
                .rememberedLease(mac == null ? null : storedLease).build();
    }

    /**
     * {@code Service.onStartCommand}: {@link #ACTION_STOP} stops; anything else connects, the
     * system's always-on start included (no intent, or {@code VpnService.SERVICE_INTERFACE}).
     * A start with the configuration already running changes nothing.
     *
     * @param action the intent's action, or null (no intent: a restart by the system)
     * @param config the configuration to connect with
     */
    public void onStartCommand(String action, TapConfig config) {
        if (ACTION_STOP.equals(action)) {
            stop();
        } else {
            run("start", () -> {
                if (tap == null || !sameConfig(config, this.config)) {
                    startNow(config);
                }
            });
        }
    }

    /**
     * Starts the emulator with {@code config}; a running one is stopped first.
     *
     * @param config the emulator configuration
     */
    public void start(TapConfig config) {
        run("start", () -> startNow(config));
    }

    /** Stops the emulator (releasing the lease) and tears the interface down. */
    public void stop() {
        run("stop", () -> {
            closeTap();
            if (state != State.FAILED) {
                setState(State.STOPPED, null);
            }
        });
    }

    /**
     * The device's network changed ({@code ConnectivityManager.NetworkCallback}): the VPN's
     * underlying network follows it, and a running emulator is told.
     *
     * @param network the new {@code android.net.Network}, or null when there is none
     */
    public void networkChanged(Object network) {
        run("network change", () -> {
            platform.setUnderlyingNetwork(network);
            if (tap != null) {
                platform.networkChanged(tap);
            }
        });
    }

    /**
     * Stops and waits for the worker to finish; the controller cannot be used afterwards.
     *
     * @param timeoutMs how long to wait
     * @throws InterruptedException if interrupted while waiting
     */
    public void shutdown(long timeoutMs) throws InterruptedException {
        stop();
        worker.shutdown();
        worker.awaitTermination(timeoutMs, TimeUnit.MILLISECONDS);
    }

    /** @return the emulator's counters, or null when not running (any thread) */
    public String statsText() {
        TapEmulator t = tap;
        return t == null ? null : t.stats().toString();
    }

    // ---- on the worker thread ----------------------------------------------------------------

    /** Runs a task on the worker; ignored once the controller is shut down. */
    private void run(String what, Runnable task) {
        try {
            worker.execute(guarded(what, task));
        } catch (RejectedExecutionException shutDown) {
            // a late callback (network, emulator) after shutdown(): nothing left to do
        }
    }

    /** The task, with whatever it throws reported to the platform, never lost. */
    private Runnable guarded(String what, Runnable task) {
        return () -> {
            try {
                task.run();
            } catch (Throwable t) {
                reportTaskFailure(what, t);
            }
        };
    }

    private void reportTaskFailure(String what, Throwable t) {
        try {
            platform.onTaskFailed(what, t);
        } catch (Throwable reporting) {
            t.addSuppressed(reporting);
            t.printStackTrace();
        }
    }

    /**
     * TapConfig has no equals; its toString names every field. The remembered lease only
     * matters when an emulator starts: a newer one is no reason to restart a running one.
     */
    private static boolean sameConfig(TapConfig a, TapConfig b) {
        return a != null && b != null && withoutLease(a).equals(withoutLease(b));
    }

    private static String withoutLease(TapConfig c) {
        return c.toString().replaceAll(", rememberedLease=(true|false)", "");
    }

    /** Hands the platform the emulator's identity after a lease event. */
    private void storeIdentity(TapEmulator from) {
        platform.storeIdentity(from.mac(), from.storedLease());
    }

    private void startNow(TapConfig c) {
        closeTap();
        try {
            TapEmulator.validate(c);
            Forwarder forwarder = new Forwarder();
            tap = factory.create(c, forwarder);
            forwarder.emulator = tap;
            config = c;
            tap.start();
            setState(State.WAITING_FOR_LEASE, null);
        } catch (Exception e) {
            closeTap();
            setState(State.FAILED, e.toString());
        }
    }

    private void closeTap() {
        if (tap != null) {
            tap.close(); // closes the TUN: the interface goes down
            tap = null;
        }
        config = null;
        plan = null;
        lease = null;
        ipv6 = null;
        cancelIpv6Grace();
        ipv6GraceOver = false;
    }

    private void cancelIpv6Grace() {
        if (ipv6Grace != null) {
            ipv6Grace.cancel(false);
            ipv6Grace = null;
        }
    }

    private void setState(State s, String detail) {
        state = s;
        platform.onStateChanged(s, plan, detail);
    }

    private static boolean hasGlobalIpv6(Ipv6Info info) {
        return info != null && !info.addresses().isEmpty();
    }

    /** The first interface waits for IPv6 (when on) until a global address or the grace ends. */
    private boolean waitingForIpv6() {
        return plan == null && config.ipv6() && !hasGlobalIpv6(ipv6) && !ipv6GraceOver && ipv6GraceMs > 0;
    }

    /**
     * Brings the interface in line with the lease and IPv6 state in force. A VPN interface
     * cannot be changed in place: a new one is established, then attached, and the emulator
     * closes the old one (make before break).
     */
    private void update(TapEmulator from) {
        if (from != tap || tap == null || lease == null) {
            return; // a late event from an emulator already closed, or no IPv4 lease yet
        }
        InterfacePlan next = InterfacePlan.fromLease(session, lease, ipv6);
        if (next.sameInterface(plan)) {
            if (state != State.CONNECTED) {
                setState(State.CONNECTED, null); // the lease came back as it was
            }
            return;
        }
        if (waitingForIpv6()) {
            if (ipv6Grace == null) {
                ipv6Grace = worker.schedule(guarded("IPv6 grace over", () -> {
                    ipv6Grace = null;
                    ipv6GraceOver = true;
                    update(from);
                }), ipv6GraceMs, TimeUnit.MILLISECONDS);
            }
            return;
        }
        cancelIpv6Grace();
        establish(next);
    }

    private void establish(InterfacePlan next) {
        int fd;
        try {
            fd = platform.establish(next);
        } catch (Exception e) {
            if (plan != null) {
                setState(state, "cannot rebuild the interface, keeping the one in force: " + e);
            } else {
                closeTap();
                setState(State.FAILED, "cannot build the interface: " + e);
            }
            return;
        }
        if (fd < 0) {
            closeTap();
            setState(State.FAILED, "VPN permission revoked");
            return;
        }
        try {
            tap.attachTun(fd); // the old TUN, if any, is closed by the emulator
        } catch (IOException | RuntimeException e) {
            closeTap();
            setState(State.FAILED, "cannot attach the interface: " + e);
            return;
        }
        plan = next;
        setState(State.CONNECTED, null);
    }

    /** The emulator listener: hops every callback onto the worker thread. */
    private final class Forwarder implements TapListener {
        /** The emulator this listener belongs to; set before it starts. */
        volatile TapEmulator emulator;

        @Override
        public boolean protect(int fd) {
            return platform.protect(fd);
        }

        @Override
        public void onLeaseAcquired(Lease l) {
            post("lease acquired", from -> {
                lease = l;
                storeIdentity(from);
                update(from);
            });
        }

        @Override
        public void onLeaseChanged(Lease oldLease, Lease newLease) {
            post("lease changed", from -> {
                lease = newLease;
                storeIdentity(from);
                update(from);
            });
        }

        @Override
        public void onLeaseRenewed(Lease l) {
            post("lease renewed", from -> { // rebuilds only if routes/DNS/MTU changed
                lease = l;
                storeIdentity(from);
                update(from);
            });
        }

        @Override
        public void onIpv6Changed(Ipv6Info info) {
            post("IPv6 changed", from -> {
                ipv6 = info;
                update(from);
            });
        }

        @Override
        public void onLeaseLost(String address, String reason) {
            post("lease lost", from -> {
                // The interface stays: its packets are dropped, never sent outside the VPN.
                lease = null;
                setState(State.LEASE_LOST, address + ": " + reason);
            });
        }

        @Override
        public void onTunFailed(String error) {
            post("TUN failed", from -> {
                // The emulator closed the broken TUN: establish a new interface at once.
                plan = null;
                setState(state, "TUN failed, rebuilding: " + error);
                update(from);
            });
        }

        @Override
        public void onLinkDown(String error, long retryInMillis) {
            post("link down", from -> setState(state, "link down (retry in " + retryInMillis + " ms): " + error));
        }

        @Override
        public void onLinkUp() {
            post("link up", from -> setState(state, "link up"));
        }

        @Override
        public void onStopped(String error) {
            if (error != null) {
                post("emulator stopped", from -> {
                    closeTap();
                    setState(State.FAILED, error);
                });
            }
        }

        /** Runs the action on the worker if this listener's emulator is still the current one. */
        private void post(String what, Consumer<TapEmulator> action) {
            TapEmulator from = emulator;
            run(what, () -> {
                if (from == tap && from != null) {
                    action.accept(from);
                }
            });
        }
    }
}
