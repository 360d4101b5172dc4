/** A notebook's stored environment and how the sidebar offers it again. */
import { applyEnvironment, environmentOf, offeredImage, shortDigest } from '../src/environment';
import type { IChoice, IResolvedEnvironment } from '../src/types';

const MiB = 1024 ** 2;
const CHOICE: IChoice = { image: 'berth/python:3.12', cpu: 2, mem: 1024 * MiB, gpu: 0, folders: ['data'] };

describe('environmentOf', () => {
  it('reads what the server writes into the metadata', () => {
    const meta = { environment: { image: 'berth/python:3.11', digest: 'sha256:abc', resources: { cpu: 1, mem: 512 * MiB, gpu: 0 } } };
    expect(environmentOf(meta)).toEqual({
      image: 'berth/python:3.11',
      digest: 'sha256:abc',
      display_name: undefined,
      resources: { cpu: 1, mem: 512 * MiB, gpu: 0 }
    });
  });
  it('ignores notebooks without one, or with a malformed one', () => {
    expect(environmentOf(undefined)).toBeNull();
    expect(environmentOf({})).toBeNull();
    expect(environmentOf({ environment: { image: 3 } })).toBeNull();
    expect(environmentOf({ environment: 'python' })).toBeNull();
  });
});

describe('offering the environment again', () => {
  const answer = (status: string, nearest: string | null = null): IResolvedEnvironment => ({
    status,
    image: 'berth/python:3.11',
    message: 'm',
    nearest: nearest ? { image: nearest } : null
  });
  it('offers exactly that image when available, else the nearest', () => {
    expect(offeredImage(answer('available'))).toBe('berth/python:3.11');
    expect(offeredImage(answer('retired', 'berth/python:3.12'))).toBe('berth/python:3.12');
    expect(offeredImage(answer('unknown'))).toBeNull();
  });
  it('applies the image and the recorded resources, keeping the folders', () => {
    const env = { image: 'berth/python:3.11', resources: { cpu: 1, mem: 512 * MiB, gpu: 0 } };
    expect(applyEnvironment(CHOICE, 'berth/python:3.11', env)).toEqual({ ...CHOICE, image: 'berth/python:3.11', cpu: 1, mem: 512 * MiB });
    expect(applyEnvironment(CHOICE, 'x:1', { image: 'x:1' })).toEqual({ ...CHOICE, image: 'x:1' });
  });
  it('applies a recorded disk size only where the choice has one (the server bounds disk)', () => {
    const env = { image: 'x:1', resources: { cpu: 1, mem: 512 * MiB, gpu: 0, disk: 3 * 1024 * MiB } };
    expect(applyEnvironment({ ...CHOICE, disk: 10 * 1024 * MiB }, 'x:1', env).disk).toBe(3 * 1024 * MiB);
    expect(applyEnvironment(CHOICE, 'x:1', env).disk).toBeUndefined();
  });
  it('shortens digests for people', () => {
    expect(shortDigest('berth/python@sha256:0c220c57603f1234567890')).toBe('sha256:0c220c57603f');
    expect(shortDigest(null)).toBe('');
  });
});
