// Types of bin/vendor.mjs for the TypeScript that imports it (tests).
export declare const BUNDLES: { file: string; packages: string[] }[];
export declare const REPORT_ENGINE: string;
export declare const VENDOR_DIR: string;
export declare function vendorInto(repo: string, root: string, buildDir: string): Promise<string>;
export declare function rewriteImports(code: string, vendorRel: string): string;
/** esbuild options for one bundle at `outfile`, to be loaded from `<root>/<build>/vendor/`. */
export declare function bundleOptions(root: string, outfile: string): Record<string, unknown>;
