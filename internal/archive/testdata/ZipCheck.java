// ZipCheck unzips a bundle the way the Android @capgo/capacitor-updater plugin does
// (CapgoUpdater.unzip / resolvePathInsideDirectory / flattenAssets, docs/protocol.md §6): a
// streaming java.util.zip.ZipInputStream, every entry read to the end, the same name checks and the
// same single-top-folder rule, then index.html required at the bundle root.
//
// Usage: java ZipCheck <bundle.zip> <destDir>
// Exit 0 and "OK <entries> entries" on success; exit 1 and "FAIL <stat>: <reason>" when the
// plugin would refuse the bundle (stat is windows_path_fail, canonical_path_fail,
// unzip_fail or set_fail).
import java.io.BufferedInputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

public class ZipCheck {
    static final class Refused extends Exception {
        final String stat;
        Refused(String stat, String msg) { super(msg); this.stat = stat; }
    }

    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: java ZipCheck <bundle.zip> <destDir>");
            System.exit(2);
        }
        try {
            int n = unzip(new File(args[0]), new File(args[1]));
            System.out.println("OK " + n + " entries");
        } catch (Refused r) {
            System.out.println("FAIL " + r.stat + ": " + r.getMessage());
            System.exit(1);
        } catch (IOException e) { // ZipException included: the plugin reports unzip_fail
            System.out.println("FAIL unzip_fail: " + e);
            System.exit(1);
        }
    }

    static File resolveInside(File dir, String name) throws IOException, Refused {
        if (name.indexOf('\\') >= 0) throw new Refused("windows_path_fail", "backslash in " + name);
        if (name.indexOf('\0') >= 0) throw new Refused("canonical_path_fail", "NUL in entry name");
        File target = new File(dir, name);
        String base = dir.getCanonicalPath() + File.separator;
        String path = target.getCanonicalPath();
        if (!path.startsWith(base)) throw new Refused("canonical_path_fail", name + " escapes " + base);
        return target;
    }

    static int unzip(File zip, File dest) throws IOException, Refused {
        if (!dest.isDirectory() && !dest.mkdirs()) throw new IOException("cannot create " + dest);
        int count = 0;
        byte[] buf = new byte[8192];
        try (ZipInputStream zis = new ZipInputStream(new BufferedInputStream(new FileInputStream(zip)))) {
            ZipEntry entry;
            while ((entry = zis.getNextEntry()) != null) {
                count++;
                File file = resolveInside(dest, entry.getName());
                File dir = entry.isDirectory() ? file : file.getParentFile();
                if (!dir.isDirectory() && !dir.mkdirs()) throw new IOException("cannot create " + dir);
                if (entry.isDirectory()) continue;
                try (FileOutputStream out = new FileOutputStream(file)) {
                    int n;
                    while ((n = zis.read(buf)) != -1) out.write(buf, 0, n);
                }
                zis.closeEntry();
            }
        }
        if (count == 0) throw new Refused("unzip_fail", "no entries");
        File root = flatten(dest);
        if (!new File(root, "index.html").isFile()) throw new Refused("set_fail", "no index.html at the bundle root");
        return count;
    }

    // flatten returns the bundle root: dest, or its single top-level folder when the other
    // top-level entries are only __MACOSX or dot entries.
    static File flatten(File dest) {
        List<File> kept = new ArrayList<>();
        File[] all = dest.listFiles();
        if (all == null) return dest;
        for (File f : all) {
            String n = f.getName();
            if (n.startsWith("__MACOSX") || n.startsWith(".")) continue;
            kept.add(f);
        }
        if (kept.size() == 1 && kept.get(0).isDirectory()) return kept.get(0);
        return dest;
    }
}
