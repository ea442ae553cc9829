package io.tapemu;

import io.tapemu.demo.core.InterfacePlan;
import io.tapemu.demo.core.VpnController;
import java.io.RandomAccessFile;
import java.lang.reflect.Field;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Host test of the demo's SDK-free controller against a fake {@link VpnController.Platform},
 * with a FIFO standing in for each TUN fd: the whole VpnService flow with the emulator on a
 * real {@code udp://} link to a DHCP server played here, then each controller flow (always-on
 * start, lost lease, IPv4 + IPv6, network change, failing task) with a real emulator whose
 * events the test plays. Needs {@code --add-opens java.base/java.io=ALL-UNNAMED} (to get the
 * FIFO's raw fd).
 */
public final class DemoHostTest {
    private DemoHostTest() {}

    static final class FakePlatform implements VpnController.Platform {
        final List<Integer> protectedFds = new ArrayList<>();
        final BlockingQueue<InterfacePlan> established = new LinkedBlockingQueue<>();
        final BlockingQueue<String> states = new LinkedBlockingQueue<>();
        final List<RandomAccessFile> keep = new ArrayList<>();
        /** setUnderlyingNetwork calls, the network as a string ("null" for none). */
        final BlockingQueue<String> underlying = new LinkedBlockingQueue<>();
        /** networkChanged calls: the emulator each was for. */
        final BlockingQueue<TapEmulator> networkChanges = new LinkedBlockingQueue<>();
        /** storeIdentity calls: "mac lease-json". */
        final BlockingQueue<String> identities = new LinkedBlockingQueue<>();
        /** onTaskFailed calls: "task: error". */
        final BlockingQueue<String> taskFailures = new LinkedBlockingQueue<>();
        /** Listeners of the emulators made by {@link #controller}'s factory, in order. */
        final BlockingQueue<TapListener> listeners = new LinkedBlockingQueue<>();
        /** setUnderlyingNetwork throws for this network (a bug in the Android side). */
        volatile String failOnNetwork;
        final Path dir;

        FakePlatform(Path dir) {
            this.dir = dir;
        }

        /**
         * A controller whose emulators run in callback mode with IPv6 off (no events of their
         * own), their listeners kept in {@link #listeners} so a test plays the emulator's
         * events; the controller still sees its own configuration.
         */
        VpnController controller(long ipv6GraceMs) {
            return new VpnController(this, "test", (config, listener) -> {
                TapEmulator t = new TapEmulator(TapConfig.builder().hostname("quiet").ipv6(false).build(), listener);
                listeners.add(listener);
                return t;
            }, ipv6GraceMs);
        }

        synchronized int establishedCount() {
            return keep.size();
        }

        TapListener awaitListener() throws InterruptedException {
            TapListener l = listeners.poll(5, TimeUnit.SECONDS);
            TestRunner.check(l != null, "an emulator was created");
            return l;
        }

        /** Returns once the controller has run every task posted before this call. */
        void barrier(VpnController c) throws InterruptedException {
            String marker = "barrier-" + System.nanoTime();
            c.networkChanged(marker);
            long end = System.currentTimeMillis() + 5000;
            while (System.currentTimeMillis() < end) {
                String s = underlying.poll(end - System.currentTimeMillis(), TimeUnit.MILLISECONDS);
                if (marker.equals(s)) {
                    networkChanges.clear();
                    return;
                }
            }
            throw new AssertionError("the controller did not reach " + marker);
        }

        void closeFifos() {
            for (RandomAccessFile f : keep) {
                try {
                    f.close();
                } catch (java.io.IOException ignored) {
                    // the emulator closed the fd already
                }
            }
        }

        @Override
        public void setUnderlyingNetwork(Object network) {
            if (network != null && network.equals(failOnNetwork)) {
                throw new IllegalStateException("setUnderlyingNetworks failed (expected in this test)");
            }
            underlying.add(String.valueOf(network));
        }

        @Override
        public void networkChanged(TapEmulator emulator) {
            networkChanges.add(emulator);
        }

        @Override
        public void storeIdentity(String mac, String storedLease) {
            identities.add(mac + " " + storedLease);
        }

        @Override
        public void onTaskFailed(String task, Throwable error) {
            taskFailures.add(task + ": " + error);
        }

        @Override
        public synchronized boolean protect(int fd) {
            protectedFds.add(fd);
            return true;
        }

        @Override
        public synchronized int establish(InterfacePlan plan) throws Exception {
            Path fifo = dir.resolve("tun" + keep.size());
            TestRunner.sh("mkfifo", fifo.toString());
            RandomAccessFile f = new RandomAccessFile(fifo.toFile(), "rw");
            keep.add(f); // the emulator owns the fd from now on; keep the Java object alive
            Field fd = java.io.FileDescriptor.class.getDeclaredField("fd");
            fd.setAccessible(true);
            int raw = fd.getInt(f.getFD());
            established.add(plan);
            return raw;
        }

        @Override
        public void onStateChanged(VpnController.State state, InterfacePlan plan, String detail) {
            states.add(state + (detail == null ? "" : ": " + detail));
        }

        String awaitState(String prefix, long ms) throws InterruptedException {
            long end = System.currentTimeMillis() + ms;
            while (System.currentTimeMillis() < end) {
                String s = states.poll(end - System.currentTimeMillis(), TimeUnit.MILLISECONDS);
                if (s == null) {
                    break;
                }
                System.out.println("     state " + s);
                if (s.startsWith(prefix)) {
                    return s;
                }
                if (s.startsWith("FAILED")) {
                    throw new AssertionError(s);
                }
            }
            throw new AssertionError("no state " + prefix);
        }
    }

    /**
     * One Ethernet frame per UDP datagram, as tapemu's udp:// link; answers DHCP (T1 = 2 s,
     * and the renewal gets a different address: a lease change) and ARP for the server.
     */
    static final class UdpDhcpServer implements Runnable {
        final DatagramSocket sock;
        final BlockingQueue<Integer> clientTypes = new LinkedBlockingQueue<>();
        volatile boolean running = true;
        int requests;

        UdpDhcpServer() throws Exception {
            sock = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            sock.setSoTimeout(100);
        }

        @Override
        public void run() {
            byte[] buf = new byte[2048];
            while (running) {
                try {
                    DatagramPacket p = new DatagramPacket(buf, buf.length);
                    sock.receive(p);
                    byte[] f = java.util.Arrays.copyOf(buf, p.getLength());
                    if (Frames.etherType(f) == 0x0806 && f.length >= 42 && f[21] == 1
                            && Frames.ipString(f, 38).equals("192.0.2.1")) {
                        byte[] out = Frames.arpReply(TestRunner.SERVER_MAC, Frames.ip("192.0.2.1"),
                                java.util.Arrays.copyOfRange(f, 22, 28), java.util.Arrays.copyOfRange(f, 28, 32));
                        sock.send(new DatagramPacket(out, out.length, p.getSocketAddress()));
                        continue;
                    }
                    Frames.Dhcp d = Frames.parseDhcpFromClient(f);
                    if (d == null) {
                        continue;
                    }
                    clientTypes.add(d.type);
                    int reply = d.type == 1 ? 2 : d.type == 3 ? 5 : 0;
                    if (d.type == 3) {
                        requests++;
                    }
                    if (reply != 0) {
                        String yiaddr = requests >= 2 ? "192.0.2.124" : "192.0.2.123";
                        byte[] out = Frames.dhcpReply(d, reply, TestRunner.SERVER_MAC, yiaddr, requests >= 2 ? 0 : 2);
                        sock.send(new DatagramPacket(out, out.length, p.getSocketAddress()));
                    }
                } catch (java.net.SocketTimeoutException e) {
                    // check running
                } catch (Exception e) {
                    if (running) {
                        e.printStackTrace();
                    }
                }
            }
        }
    }

    /** A lease for {@code address} in 192.0.2.0/24 (the one place that builds test leases). */
    static Lease lease(String address) {
        return Lease.parse("{\"event\":\"lease\",\"address\":\"" + address + "\",\"prefix\":24,"
                + "\"routes\":[{\"destination\":\"192.0.2.0/24\",\"gateway\":null},"
                + "{\"destination\":\"0.0.0.0/0\",\"gateway\":\"192.0.2.1\"}],"
                + "\"dns\":[\"192.0.2.53\"],\"mtu\":1400}");
    }

    /** IPv6 state with a global SLAAC address (the one place that builds test IPv6 states). */
    static Ipv6Info globalIpv6() {
        return Ipv6Info.parse("{\"event\":\"ipv6\",\"addresses\":[\"2001:db8:1::5/64\"],"
                + "\"routes\":[{\"destination\":\"2001:db8:1::/64\",\"gateway\":null},"
                + "{\"destination\":\"::/0\",\"gateway\":\"fe80::1\"}],"
                + "\"dns\":[\"2001:db8:1::53\"],\"mtu\":1280}");
    }

    /** The demo's configuration without a link: nothing but the test talks to the controller. */
    static TapConfig quietConfig(boolean ipv6) {
        return TapConfig.builder().hostname("demo-host").ipv6(ipv6).build();
    }

    static boolean tunAttached(VpnController c) {
        String stats = c.statsText();
        return stats != null && stats.contains("tun_attached=1");
    }

    /** Runs body with a fresh platform and controller, and cleans both up. */
    static void withController(long ipv6GraceMs, ControllerBody body) throws Exception {
        FakePlatform p = new FakePlatform(Files.createTempDirectory("tapemu-demo"));
        VpnController c = p.controller(ipv6GraceMs);
        try {
            body.run(p, c);
        } finally {
            c.shutdown(5000);
            p.closeFifos();
        }
    }

    interface ControllerBody {
        void run(FakePlatform p, VpnController c) throws Exception;
    }

    /** The controller's flows with the emulator's events played by the test. */
    static void controllerTests() {
        TestRunner.test("demo: always-on start (no intent, SERVICE_INTERFACE) connects; only ACTION_STOP stops", () -> {
            withController(0, (p, c) -> {
                c.onStartCommand(null, quietConfig(false)); // restarted by the system: no intent
                p.awaitState("WAITING_FOR_LEASE", 5000);
                TapListener l = p.awaitListener();
                l.onLeaseAcquired(lease("192.0.2.5"));
                p.awaitState("CONNECTED", 5000);
                c.onStartCommand("android.net.VpnService", quietConfig(false)); // always-on, again
                p.barrier(c);
                TestRunner.check(p.listeners.isEmpty() && p.establishedCount() == 1 && tunAttached(c),
                        "the same start again leaves the connection as it is");
                c.onStartCommand(VpnController.ACTION_STOP, null);
                p.awaitState("STOPPED", 5000);
                TestRunner.check(c.statsText() == null, "emulator closed");
            });
        });

        TestRunner.test("demo: a lost lease keeps the TUN (kill switch) until the next lease replaces it", () -> {
            withController(0, (p, c) -> {
                c.start(quietConfig(false));
                p.awaitState("WAITING_FOR_LEASE", 5000);
                TapListener l = p.awaitListener();
                l.onLeaseAcquired(lease("192.0.2.5"));
                p.awaitState("CONNECTED", 5000);
                l.onLeaseLost("192.0.2.5", "expired");
                p.awaitState("LEASE_LOST", 5000);
                TestRunner.check(tunAttached(c), "TUN still attached after the lease was lost: " + c.statsText());
                l.onLeaseAcquired(lease("192.0.2.5"));
                p.awaitState("CONNECTED", 5000);
                TestRunner.check(p.establishedCount() == 1, "the same lease back: the interface in force goes on");
                l.onLeaseLost("192.0.2.5", "nak");
                p.awaitState("LEASE_LOST", 5000);
                l.onLeaseAcquired(lease("192.0.2.6"));
                p.awaitState("CONNECTED", 5000);
                p.established.poll();
                InterfacePlan second = p.established.poll(1, TimeUnit.SECONDS);
                TestRunner.check(p.establishedCount() == 2 && second != null
                        && second.address.getHostAddress().equals("192.0.2.6") && tunAttached(c),
                        "a new lease: a new interface, attached in place of the old one");
            });
        });

        TestRunner.test("demo: a failed TUN is rebuilt at once; link status shows in the state's detail", () -> {
            withController(0, (p, c) -> {
                c.start(quietConfig(false));
                p.awaitState("WAITING_FOR_LEASE", 5000);
                TapListener l = p.awaitListener();
                l.onLeaseAcquired(lease("192.0.2.5"));
                p.awaitState("CONNECTED", 5000);
                l.onTunFailed("read: I/O error");
                long end = System.currentTimeMillis() + 5000;
                while (p.establishedCount() < 2 && System.currentTimeMillis() < end) {
                    Thread.sleep(10);
                }
                TestRunner.check(p.establishedCount() == 2 && tunAttached(c), "a new interface after the TUN failed");
                l.onLinkDown("link tcp://192.0.2.1:7001?len=2: connection reset", 250);
                l.onLinkUp();
                p.barrier(c);
                TestRunner.check(c.statsText() != null, "still running through link loss");
            });
        });

        TestRunner.test("demo: each lease event stores the identity (MAC, stored lease); configFor reuses it", () -> {
            withController(0, (p, c) -> {
                c.start(quietConfig(false));
                p.awaitState("WAITING_FOR_LEASE", 5000);
                TapListener l = p.awaitListener();
                l.onLeaseAcquired(lease("192.0.2.5"));
                String id = p.identities.poll(5, TimeUnit.SECONDS);
                TestRunner.check(id != null && id.matches("[0-9a-f]{2}(:[0-9a-f]{2}){5} null"),
                        "the MAC stored (no native lease in this fake): " + id);
                String json = "{\"address\":\"192.0.2.5\",\"prefix\":24,\"lease_ms\":3600000,"
                        + "\"t1_ms\":null,\"t2_ms\":null,\"server\":\"192.0.2.1\",\"acquired_unix\":1}";
                TapConfig again = VpnController.configFor("vxlan://198.51.100.1:4789?vni=42", "h",
                        id.split(" ")[0], json);
                TestRunner.check(id.startsWith(again.mac()) && json.equals(again.rememberedLease()), "reused: " + again);
                TestRunner.check(VpnController.configFor("vxlan://198.51.100.1:4789?vni=42", "h", null, json)
                        .rememberedLease() == null, "no lease without its MAC");
                TapEmulator.validate(again);
            });
        });

        TestRunner.test("demo: IPv4 and IPv6 arriving together -> one establish() with both", () -> {
            withController(60_000, (p, c) -> { // a grace that does not end within the test
                c.start(quietConfig(true));
                p.awaitState("WAITING_FOR_LEASE", 5000);
                TapListener l = p.awaitListener();
                l.onLeaseAcquired(lease("192.0.2.5"));
                l.onIpv6Changed(globalIpv6());
                p.awaitState("CONNECTED", 5000);
                p.barrier(c);
                InterfacePlan plan = p.established.poll(1, TimeUnit.SECONDS);
                TestRunner.check(p.establishedCount() == 1 && plan != null && plan.ipv6Addresses.size() == 1
                        && plan.address.getHostAddress().equals("192.0.2.5") && !plan.metered,
                        "one interface with both families, unmetered: " + plan);
            });
            withController(60_000, (p, c) -> { // IPv6 first: the lease establishes at once
                c.start(quietConfig(true));
                p.awaitState("WAITING_FOR_LEASE", 5000);
                TapListener l = p.awaitListener();
                l.onIpv6Changed(globalIpv6());
                l.onLeaseAcquired(lease("192.0.2.5"));
                p.awaitState("CONNECTED", 5000);
                p.barrier(c);
                TestRunner.check(p.establishedCount() == 1, "one establish");
            });
        });

        TestRunner.test("demo: IPv6 after the grace period -> IPv4 first, then one rebuild with both", () -> {
            withController(1, (p, c) -> {
                c.start(quietConfig(true));
                p.awaitState("WAITING_FOR_LEASE", 5000);
                TapListener l = p.awaitListener();
                l.onLeaseAcquired(lease("192.0.2.5"));
                p.awaitState("CONNECTED", 5000);
                l.onIpv6Changed(globalIpv6());
                p.awaitState("CONNECTED", 5000);
                p.barrier(c);
                p.established.poll();
                InterfacePlan both = p.established.poll(1, TimeUnit.SECONDS);
                TestRunner.check(p.establishedCount() == 2 && both != null && both.ipv6Addresses.size() == 1,
                        "IPv4 alone after the grace, then both: " + both);
            });
        });

        TestRunner.test("demo: a network change sets the underlying network and tells the emulator", () -> {
            withController(0, (p, c) -> {
                c.networkChanged("wifi");
                TestRunner.check("wifi".equals(p.underlying.poll(5, TimeUnit.SECONDS)), "underlying network set");
                TestRunner.check(p.networkChanges.isEmpty(), "no emulator yet, none told");
                c.start(quietConfig(false));
                p.awaitState("WAITING_FOR_LEASE", 5000);
                p.awaitListener();
                c.networkChanged("cellular");
                TestRunner.check("cellular".equals(p.underlying.poll(5, TimeUnit.SECONDS)), "underlying network follows");
                TapEmulator told = p.networkChanges.poll(5, TimeUnit.SECONDS);
                TestRunner.check(told != null && !told.isClosed(), "the running emulator was told");
                c.networkChanged(null);
                TestRunner.check("null".equals(p.underlying.poll(5, TimeUnit.SECONDS)), "no network: the system default");
            });
        });

        TestRunner.test("demo: an exception in a controller task is caught and reported; the worker goes on", () -> {
            withController(0, (p, c) -> {
                p.failOnNetwork = "broken";
                c.networkChanged("broken");
                String failure = p.taskFailures.poll(5, TimeUnit.SECONDS);
                TestRunner.check(failure != null && failure.startsWith("network change: java.lang.IllegalStateException"),
                        "reported: " + failure);
                c.start(quietConfig(false));
                p.awaitState("WAITING_FOR_LEASE", 5000);
                c.stop();
                p.awaitState("STOPPED", 5000);
            });
        });
    }

    public static void main(String[] args) throws Exception {
        TestRunner.test("demo: InterfacePlan from a lease, and when it needs a rebuild", () -> {
            Lease a = Lease.parse("{\"event\":\"lease\",\"address\":\"192.0.2.5\",\"prefix\":24,"
                    + "\"routes\":[{\"destination\":\"192.0.2.0/24\",\"gateway\":null},"
                    + "{\"destination\":\"0.0.0.0/0\",\"gateway\":\"192.0.2.1\"}],"
                    + "\"dns\":[\"192.0.2.53\"],\"search\":[\"lab.example\"],\"mtu\":1400}");
            Lease b = Lease.parse("{\"event\":\"lease\",\"address\":\"192.0.2.6\",\"prefix\":24,"
                    + "\"routes\":[{\"destination\":\"192.0.2.0/24\",\"gateway\":null}],\"mtu\":1400}");
            InterfacePlan pa = InterfacePlan.fromLease("s", a);
            TestRunner.check(pa.routes.size() == 2 && pa.dnsServers.size() == 1 && pa.mtu == 1400, pa.toString());
            TestRunner.check(pa.sameInterface(InterfacePlan.fromLease("s", a)), "same");
            TestRunner.check(!pa.sameInterface(InterfacePlan.fromLease("s", b)), "different");
            Ipv6Info v6 = Ipv6Info.parse("{\"event\":\"ipv6\",\"addresses\":[\"2001:db8:1::5/64\"],"
                    + "\"routes\":[{\"destination\":\"2001:db8:1::/64\",\"gateway\":null},"
                    + "{\"destination\":\"::/0\",\"gateway\":\"fe80::1\"}],"
                    + "\"dns\":[\"2001:db8:1::53\"],\"mtu\":1280}");
            InterfacePlan both = InterfacePlan.fromLease("s", a, v6);
            TestRunner.check(both.ipv6Addresses.size() == 1 && both.routes.size() == 4 && both.dnsServers.size() == 2
                    && both.mtu == 1280, both.toString());
            TestRunner.check(!both.sameInterface(pa), "IPv6 arriving calls for a rebuild");
        });

        TestRunner.test("demo: VpnController flow: protect, DHCP lease, establish, attach, rebuild on a lease change, stop", () -> {
            Path dir = Files.createTempDirectory("tapemu-demo");
            UdpDhcpServer server = new UdpDhcpServer();
            Thread st = new Thread(server, "udp-dhcp-server");
            st.start();
            FakePlatform platform = new FakePlatform(dir);
            // No IPv6 grace: the server here has no IPv6, and its renewal (a new address) comes 2 s in.
            VpnController c = new VpnController(platform, "test", TapEmulator::new, 0);
            try {
                String url = "udp://127.0.0.1:" + server.sock.getLocalPort();
                c.start(VpnController.configFor(url, "demo-host"));
                platform.awaitState("WAITING_FOR_LEASE", 5000);
                platform.awaitState("CONNECTED", 15000);
                synchronized (platform) { // start() returns before the link opens: checked once connected
                    TestRunner.check(platform.protectedFds.size() == 1, "protect " + platform.protectedFds);
                }
                InterfacePlan plan = platform.established.poll(1, TimeUnit.SECONDS);
                TestRunner.check(plan != null, "established");
                System.out.println("     plan: " + plan.toString().replace("\n", "; "));
                TestRunner.check(plan.address.getHostAddress().equals("192.0.2.123") && plan.prefixLength == 24, "address");
                TestRunner.check(plan.routes.contains(new Route(Lease.ip("0.0.0.0"), 0, Lease.ip("192.0.2.1"))), "default route");
                TestRunner.check(plan.dnsServers.size() == 2 && plan.mtu == 1400, "dns, mtu");
                TestRunner.check(plan.searchDomains.contains("lab.example"), "search");
                String stats = c.statsText();
                TestRunner.check(stats != null && stats.contains("tun_attached=1"), "TUN attached: " + stats);
                // T1 = 2 s: the renewal is answered with another address -> a new interface.
                platform.awaitState("CONNECTED", 15000);
                InterfacePlan rebuilt = platform.established.poll(1, TimeUnit.SECONDS);
                TestRunner.check(rebuilt != null && rebuilt.address.getHostAddress().equals("192.0.2.124"),
                        "rebuilt for the new address: " + rebuilt);
                TestRunner.check(platform.keep.size() == 2, "a second TUN fd was established");
                c.stop();
                platform.awaitState("STOPPED", 5000);
                TestRunner.check(c.statsText() == null, "emulator closed");
            } finally {
                c.shutdown(5000);
                server.running = false;
                st.join();
                server.sock.close();
                platform.closeFifos();
            }
        });

        TestRunner.test("demo: a bad server URL ends in FAILED, not a crash", () -> {
            FakePlatform platform = new FakePlatform(Files.createTempDirectory("tapemu-demo"));
            VpnController c = new VpnController(platform, "test");
            c.start(TapConfig.builder().link("gopher://x:1").build());
            String s = null;
            long end = System.currentTimeMillis() + 5000;
            while (s == null && System.currentTimeMillis() < end) {
                String next = platform.states.poll(100, TimeUnit.MILLISECONDS);
                if (next != null && next.startsWith("FAILED")) {
                    s = next;
                }
            }
            TestRunner.check(s != null && s.contains("IllegalArgumentException"), "state " + s);
            c.shutdown(5000);
        });

        controllerTests();

        TestRunner.finish();
    }
}
