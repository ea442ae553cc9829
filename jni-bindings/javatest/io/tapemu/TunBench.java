package io.tapemu;

import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * TCP throughput through the Java API on a desktop TUN: an emulator on a built-in link with
 * a {@link LinuxTun} attached, iperf3 from this namespace to a LAN host and back. Run as
 * root inside the namespace lab's phone namespace (see BENCHMARKS.md for the command).
 * Arguments: link URL, LAN host, the LAN host's namespace, seconds per direction. Prints
 * Gbit/s both ways with {@link LinuxTun#openWithOffloads} and with {@link LinuxTun#open}.
 */
public final class TunBench {
    private TunBench() {}

    public static void main(String[] args) throws Exception {
        String link = args[0];
        String lanHost = args[1];
        String hostNs = args[2];
        int seconds = Integer.parseInt(args[3]);
        int port = 5331;
        for (boolean offloads : new boolean[] {true, false}) {
            TestRunner.Recorder r = new TestRunner.Recorder();
            TapConfig cfg = TapConfig.builder().hostname("jvm-bench").link(link).ipv6(false).build();
            try (TapEmulator tap = new TapEmulator(cfg, r)) {
                tap.start();
                Lease lease = r.leases.poll(30, TimeUnit.SECONDS);
                if (lease == null) {
                    throw new IllegalStateException("no lease");
                }
                String name = offloads ? "tpjbench1" : "tpjbench0";
                tap.attachTun(TestRunner.labTun(name, lease, offloads));
                double[] gbps = new double[2];
                for (int reverse = 0; reverse < 2; reverse++) {
                    String p = String.valueOf(port++);
                    TestRunner.sh("ip", "netns", "exec", hostNs, "iperf3", "-s", "-1", "-D", "-p", p);
                    TestRunner.awaitListening(hostNs, p);
                    String json = reverse == 1
                            ? TestRunner.sh("iperf3", "-c", lanHost, "-p", p, "-t", String.valueOf(seconds), "-J", "-R")
                            : TestRunner.sh("iperf3", "-c", lanHost, "-p", p, "-t", String.valueOf(seconds), "-J");
                    Matcher m = Pattern.compile(
                            "\"sum_received\"\\s*:\\s*\\{[^}]*?\"bits_per_second\"\\s*:\\s*([0-9.e+]+)").matcher(json);
                    if (!m.find()) {
                        throw new IllegalStateException("no iperf3 result");
                    }
                    gbps[reverse] = Double.parseDouble(m.group(1)) / 1e9;
                }
                TapStats s = tap.stats();
                System.out.printf("%s: phone -> host %.2f Gbit/s, host -> phone %.2f Gbit/s"
                        + " (super-segments in %d, out %d)%n",
                        offloads ? "LinuxTun.openWithOffloads" : "LinuxTun.open",
                        gbps[0], gbps[1], s.get("tun_super_segments_in"), s.get("tun_super_segments_out"));
            }
        }
        System.exit(0);
    }
}
