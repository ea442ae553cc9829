package io.tapemu.demo.core;

import io.tapemu.Ipv6Info;
import io.tapemu.Lease;
import io.tapemu.TapConfig;
import io.tapemu.TapEmulator;
import io.tapemu.TapListener;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * The whole VpnService flow, without the Android SDK: start the emulator (its sockets
 * protected), wait for the lease, build the interface from it, hand the fd over, rebuild on a
 * lease change, stop cleanly. The Android service supplies a {@link Platform}.
 *
 * <p>Threading: listener callbacks arrive on the emulator's thread and are posted to this
 * controller's own single worker thread, where all state changes and all {@code establish()}
 * calls happen; {@link #start} and {@link #stop} may be called from any thread.
 */
public final class VpnController {
    /** What the controller is doing. */
    public enum State {
        /** Not started. */
        IDLE,
        /** Emulator started, link up, waiting for DHCP. */
        WAITING_FOR_LEASE,
        /** Interface established and attached. */
        CONNECTED,
        /** The lease is gone; waiting for a new one. */
        LEASE_LOST,
        /** Stopped by {@link #stop()} or by the system. */
        STOPPED,
        /** Stopped on an error (see the detail). */
        FAILED
    }

    /** What the controller needs from Android. */
    public interface Platform {
        /**
         * {@code VpnService.protect(fd)}.
         *
         * @param fd a socket of the emulator's link
         * @return true if protected
         */
        boolean protect(int fd);

        /**
         * Builds the VPN interface ({@code VpnService.Builder}: addAddress, addRoute,
         * addDnsServer, addSearchDomain, setMtu), {@code establish()}es it and returns
         * {@code ParcelFileDescriptor.detachFd()}.
         *
         * @param plan the interface to build
         * @return the detached fd, or -1 if the user revoked the VPN
         * @throws Exception if the builder rejects the plan
         */
        int establish(InterfacePlan plan) throws Exception;

        /**
         * State changes, on the controller's worker thread; post to the UI from here.
         *
         * @param state the new state
         * @param plan the interface in force, or null
         * @param detail an error or a remark, or null
         */
        void onStateChanged(State state, InterfacePlan plan, String detail);
    }

    private final Platform platform;
    private final String session;
    private final ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "vpn-controller");
        t.setDaemon(true);
        return t;
    });
    // Only touched on the worker thread.
    private volatile TapEmulator tap;
    private InterfacePlan plan;
    private Lease lease;
    private Ipv6Info ipv6;
    private State state = State.IDLE;

    /**
     * @param platform the Android side
     * @param session session name for the VPN interface
     */
    public VpnController(Platform platform, String session) {
        this.platform = platform;
        this.session = session;
    }

    /**
     * The configuration the demo uses: DHCP with a hostname over the given server link.
     *
     * @param serverUrl a link URL such as {@code vxlan://198.51.100.1:4789?vni=42}
     * @param hostname hostname for DHCP
     * @return the configuration
     */
    public static TapConfig configFor(String serverUrl, String hostname) {
        return TapConfig.builder().hostname(hostname).link(serverUrl).build();
    }

    /**
     * Starts the emulator with {@code config}; a running one is stopped first.
     *
     * @param config the emulator configuration
     */
    public void start(TapConfig config) {
        worker.execute(() -> {
            closeTap();
            try {
                TapEmulator.validate(config);
                Forwarder forwarder = new Forwarder();
                tap = new TapEmulator(config, forwarder);
                forwarder.emulator = tap;
                tap.start();
                setState(State.WAITING_FOR_LEASE, null);
            } catch (Exception e) {
                closeTap();
                setState(State.FAILED, e.toString());
            }
        });
    }

    /** Stops the emulator (releasing the lease) and tears the interface down. */
    public void stop() {
        worker.execute(() -> {
            closeTap();
            if (state != State.FAILED) {
                setState(State.STOPPED, null);
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

    private void closeTap() {
        if (tap != null) {
            tap.close();
            tap = null;
        }
        plan = null;
        lease = null;
        ipv6 = null;
    }

    private void setState(State s, String detail) {
        state = s;
        platform.onStateChanged(s, plan, detail);
    }

    /**
     * Builds the interface for the lease and IPv6 state in force, unless the current one
     * already fits (a VPN interface cannot be changed in place: a new one replaces it).
     */
    private void rebuild(TapEmulator from) {
        if (from != tap || lease == null) {
            return; // a late event from an emulator already closed, or no IPv4 lease yet
        }
        InterfacePlan next = InterfacePlan.fromLease(session, lease, ipv6);
        if (next.sameInterface(plan) && state == State.CONNECTED) {
            return;
        }
        try {
            int fd = platform.establish(next);
            if (fd < 0) {
                closeTap();
                setState(State.FAILED, "VPN permission revoked");
                return;
            }
            tap.attachTun(fd); // the old TUN, if any, is closed by the emulator
            plan = next;
            setState(State.CONNECTED, null);
        } catch (Exception e) {
            closeTap();
            setState(State.FAILED, "cannot build the interface: " + e);
        }
    }

    private void updateLease(TapEmulator from, Lease l) {
        if (from == tap) {
            lease = l;
            rebuild(from);
        }
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
            post(from -> updateLease(from, l));
        }

        @Override
        public void onLeaseChanged(Lease oldLease, Lease newLease) {
            post(from -> updateLease(from, newLease));
        }

        @Override
        public void onLeaseRenewed(Lease l) {
            post(from -> updateLease(from, l)); // rebuilds only if routes/DNS/MTU changed
        }

        @Override
        public void onIpv6Changed(Ipv6Info info) {
            post(from -> {
                if (from == tap) {
                    ipv6 = info;
                    rebuild(from);
                }
            });
        }

        @Override
        public void onLeaseLost(String address, String reason) {
            post(from -> {
                if (from == tap && tap != null) {
                    tap.detachTun();
                    plan = null;
                    lease = null;
                    setState(State.LEASE_LOST, address + ": " + reason);
                }
            });
        }

        @Override
        public void onStopped(String error) {
            if (error != null) {
                post(from -> {
                    if (from == tap) {
                        closeTap();
                        setState(State.FAILED, error);
                    }
                });
            }
        }

        private void post(java.util.function.Consumer<TapEmulator> action) {
            TapEmulator from = emulator;
            worker.execute(() -> action.accept(from));
        }
    }
}
