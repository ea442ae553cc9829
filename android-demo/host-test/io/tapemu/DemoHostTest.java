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
 * Host test of the demo's SDK-free controller: the whole VpnService flow against a fake
 * {@link VpnController.Platform}, with the emulator on a real {@code udp://} link to a DHCP
 * server played here, and a FIFO standing in for the TUN fd. Needs
 * {@code --add-opens java.base/java.io=ALL-UNNAMED} (to get the FIFO's raw fd).
 */
public final class DemoHostTest {
    private DemoHostTest() {}

    static final class FakePlatform implements VpnController.Platform {
        final List<Integer> protectedFds = new ArrayList<>();
        final BlockingQueue<InterfacePlan> established = new LinkedBlockingQueue<>();
        final BlockingQueue<String> states = new LinkedBlockingQueue<>();
        final List<RandomAccessFile> keep = new ArrayList<>();
        final Path dir;

        FakePlatform(Path dir) {
            this.dir = dir;
        }

        @Override
        public synchronized boolean protect(int fd) {
            protectedFds.add(fd);
            return true;
        }

        @Override
        public int establish(InterfacePlan plan) throws Exception {
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
            VpnController c = new VpnController(platform, "test");
            try {
                String url = "udp://127.0.0.1:" + server.sock.getLocalPort();
                c.start(VpnController.configFor(url, "demo-host"));
                platform.awaitState("WAITING_FOR_LEASE", 5000);
                synchronized (platform) {
                    TestRunner.check(platform.protectedFds.size() == 1, "protect " + platform.protectedFds);
                }
                platform.awaitState("CONNECTED", 15000);
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
                for (RandomAccessFile f : platform.keep) {
                    try {
                        f.close();
                    } catch (java.io.IOException ignored) {
                        // the emulator closed the fd already
                    }
                }
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

        TestRunner.finish();
    }
}
