// Turning views into PNG data URLs and standalone SVG text, without any network access.

import { SVG_NS } from "./dom";

/** Serialise an SVG element to standalone SVG text (with the namespaces a file needs). */
export function serializeSvg(el: SVGSVGElement): string {
  const clone = el.cloneNode(true) as SVGSVGElement;
  clone.setAttribute("xmlns", SVG_NS);
  clone.setAttribute("xmlns:xlink", "http://www.w3.org/1999/xlink");
  // Interaction-only nodes are not part of the picture.
  clone.querySelectorAll("[data-export='skip']").forEach((n) => n.remove());
  const text = new XMLSerializer().serializeToString(clone);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${text}`;
}

/** Rasterise SVG text to a PNG data URL at `scale` times its size. */
export function svgToPng(doc: Document, svgText: string, width: number, height: number, scale = 2): Promise<string> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      try {
        const canvas = doc.createElement("canvas");
        canvas.width = Math.max(1, Math.round(width * scale));
        canvas.height = Math.max(1, Math.round(height * scale));
        const ctx = canvas.getContext("2d");
        if (!ctx) throw new Error("no 2-D canvas context available");
        ctx.scale(scale, scale);
        ctx.drawImage(img, 0, 0, width, height);
        resolve(canvas.toDataURL("image/png"));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    };
    img.onerror = () => reject(new Error("the SVG could not be rasterised"));
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svgText)}`;
  });
}

/** Wrap a PNG data URL in an SVG document of the given size (canvas views' SVG export). */
export function pngInSvg(dataUrl: string, width: number, height: number, title: string): string {
  const w = Math.max(1, Math.round(width));
  const h = Math.max(1, Math.round(height));
  const safeTitle = title.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="${SVG_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">` +
    `<title>${safeTitle}</title>` +
    `<image width="${w}" height="${h}" href="${dataUrl}" xlink:href="${dataUrl}"/></svg>`
  );
}
