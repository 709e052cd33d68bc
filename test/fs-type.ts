/**
 * The name of the file system a folder is on, as the benchmarks and the
 * torture report it: findmnt's (ext4), since statfs's magic number cannot
 * tell ext4 from ext2/ext3.
 */
import { execFileSync } from 'node:child_process';

export function fileSystemName(dir: string): string {
  try {
    return execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '-T', dir], { encoding: 'utf8' }).trim().split('\n')[0]!;
  } catch {
    return execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
  }
}
